"""The operator actions: ``au split|merge|commit|abort|finish|retry``.

Each waits for completion with a progress display (or returns at once with
``--no-wait``); a refused action exits non-zero naming the allowed ones, and a request that
ends Broken exits non-zero with the reason.
"""

from __future__ import annotations

import argparse
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli.output import follow_until_done, print_json
from activeupgrade.config import adhoc
from activeupgrade.errors import StepError, UsageError

HELP = {
    "split": "divide the host into Production and Upgrade Sides (PrepareSplit, ExecuteSplit)",
    "merge": "move the applications onto the upgraded software (PrepareMerge, ExecuteMerge)",
    "commit": "make the upgrade permanent: resync the old replicas from the upgraded ones",
    "abort": "restore the original software and resync (allowed until Commit begins)",
    "finish": "clean up the session and return to Idle",
    "retry": "re-execute the failed request from its failed step",
}


def submit_and_wait(
    client: Client,
    action: str,
    *,
    config: str | None = None,
    force: bool = False,
    no_wait: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Submit an operator action; unless ``no_wait``, follow it to the end.

    Raises StateError when the action is refused and StepError when it ends Broken.
    """
    body: dict[str, Any] = {"force": force}
    if config is not None:
        body["config"] = config
    status: dict[str, Any] = client.post(f"/actions/{action}", body)
    if no_wait:
        return status
    status = follow_until_done(client, action, quiet=quiet)
    if status["operational_state"] == "Broken":
        raise StepError(
            f"{status['request']} is Broken: {status.get('reason')}",
            hint="Fix the cause (`au log --severity warning`), then `au retry`"
            + (" or `au abort`" if "abort" in status.get("allowed_actions", []) else "")
            + ".",
            details={"status": status},
        )
    return status


def make_handler(action: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        client = Client.from_env()
        config = getattr(args, "config", None)
        volumes = getattr(args, "volume", None)
        if volumes:
            if config is not None:
                raise UsageError("give either --config or --volume, not both")
            config = str(adhoc.volumes_file(client.instance, volumes))
        status = submit_and_wait(
            client, action, config=config,
            force=getattr(args, "force", False), no_wait=args.no_wait, quiet=args.json,
        )
        if args.json:
            print_json(status)
        else:
            print(f"{action}: upgrade state {status['upgrade_state']}, "
                  f"{status['operational_state']}")
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
