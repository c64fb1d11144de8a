"""The operator actions: ``au split|merge|commit|abort|finish|retry``.

Each follows its requests to the end with a progress display (or returns at once with
``--no-wait``); a refused action exits non-zero naming the allowed ones, and a request that
ends Broken exits with the code of the error that broke it, its message and its hint.
"""

from __future__ import annotations

import argparse
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli.output import print_json, progress
from activeupgrade.errors import UsageError
from activeupgrade.model.states import OperatorAction

HELP = {
    "split": "divide the host into Production and Upgrade Sides (PrepareSplit, ExecuteSplit)",
    "merge": "move the applications onto the upgraded software (PrepareMerge, ExecuteMerge)",
    "commit": "make the upgrade permanent: resync the old replicas from the upgraded ones",
    "abort": "restore the original software and resync (allowed until Commit begins)",
    "finish": "clean up the session and return to Idle",
    "retry": "re-execute the failed request from its failed step",
}


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
        with progress(quiet=args.json or args.no_wait) as bar:
            status = client.act(OperatorAction(action), config=config,
                                force=getattr(args, "force", False), wait=not args.no_wait,
                                on_progress=bar)
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
        if action == "retry":
            p.add_argument("--force", action="store_true",
                           help="retry even past the attempt cap")
        p.set_defaults(func=make_handler(action))
