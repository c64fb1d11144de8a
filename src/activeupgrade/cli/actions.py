"""The operator actions: ``au split|merge|commit|abort|finish|retry``.

Each follows its requests to the end with a progress display (or returns at once with
``--no-wait``); a refused action exits non-zero naming the allowed ones, and a request that
ends Broken exits with the code of the error that broke it, its message and its hint.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli.follow import act
from activeupgrade.cli.output import print_json, progress
from activeupgrade.errors import UsageError
from activeupgrade.model.states import OperatorAction

HELP = {
    "split": "divide the host into Production and Upgrade Sides (PrepareSplit, ExecuteSplit)",
    "merge": "move the applications onto the upgraded software (PrepareMerge, ExecuteMerge)",
    "confirm": "confirm the upgrade within the confirmation window after merge ([merge] "
               "confirm_within); otherwise the merge is aborted automatically",
    "commit": "the point of no return: make the upgrade permanent (the old replicas are "
              "resynchronised from the upgraded ones; no abort after it)",
    "abort": "restore the original software and resync (allowed until Commit begins)",
    "finish": "clean up the session and return to Idle",
    "retry": "re-execute the failed request from its failed step",
}


CONFIRMED = ("commit", "abort")
"""Actions that may ask first (``present.console.confirmation`` says when)."""


def confirm(client: Client, action: OperatorAction, yes: bool, *,
            keep_data: bool = False) -> None:
    """Ask before the point of no return (commit) and before an abort from Merge; without
    a terminal, ``--yes`` says it instead."""
    from activeupgrade.present.console import confirmation

    question = confirmation(action, client.status().to_dict(), keep_data=keep_data)
    if not question or yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(f"`au {action}` needs --yes when it cannot ask: {question[:-1]}.",
                         hint=f"Run `au {action} --yes` to confirm.")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError(f"{action} not confirmed: nothing was done",
                         hint=f"Answer y, or run `au {action} --yes`.")


def make_handler(action: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        client = Client.from_env()
        config = getattr(args, "config", None)
        volumes = getattr(args, "volume", None)
        if volumes:
            if config is not None:
                raise UsageError("give either --config or --volume, not both")
            from activeupgrade.config import adhoc  # reads configuration files

            config = str(adhoc.volumes_file(client.instance, volumes))
        keep_data = bool(getattr(args, "keep_data", False))
        if action in CONFIRMED:
            confirm(client, OperatorAction(action), args.yes, keep_data=keep_data)
        options = {"keep_data": True} if keep_data else {}
        with progress(quiet=args.json or args.no_wait) as bar:
            status = act(client, OperatorAction(action), config=config,
                         force=getattr(args, "force", False), wait=not args.no_wait,
                         display=bar, **options)
        if args.json:
            print_json(status.to_dict())
        else:
            print(f"{action}: upgrade state {status.upgrade_state}, "
                  f"{status.operational_state}")
        return 0

    return handler


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for action, text in HELP.items():
        p = sub.add_parser(action, help=text)
        p.add_argument("--no-wait", action="store_true", help="return at once")
        p.add_argument("--json", action="store_true", help="print the final status as JSON")
        if action == "split":
            p.add_argument("--config", metavar="FILE",
                           help="configuration of this session (overrides the loaded one)")
            p.add_argument("--volume", action="append", metavar="PATH[:ROLE]",
                           help="a session without a file: these volumes (repeatable)")
        if action in CONFIRMED:
            p.add_argument("--yes", "-y", action="store_true",
                           help="confirm without asking (needed when not on a terminal"
                           + (": commit is the point of no return)" if action == "commit"
                              else " and the session is in Merge)"))
        if action == "abort":
            p.add_argument("--keep-data", action="store_true",
                           help="from Merge: keep the live data of checkpointed data volumes "
                           "(default: they return to their checkpoint, the writes since "
                           "saved aside)")
        if action == "retry":
            p.add_argument("--force", action="store_true",
                           help="retry even past the attempt cap")
        p.set_defaults(func=make_handler(action))
