"""``au plan``: a dry run of the whole session, changing nothing."""

from __future__ import annotations

import argparse
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli import oneoff
from activeupgrade.cli.output import print_json
from activeupgrade.present.plan import plan_lines


def cmd_plan(args: argparse.Namespace) -> int:
    config = oneoff.config_path(args)
    plan: dict[str, Any] = Client.from_env().post(
        "/plan", {"config": config, "run_actions": args.run_actions})
    if args.json:
        print_json(plan)
    else:
        print("\n".join(plan_lines(plan)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("plan", help="dry run of the whole session: checks, services, "
                       "actions in order, backup, disruption, resync")
    oneoff.add_arguments(p, "plan", "the plan")
    p.add_argument("--run-actions", action="store_true",
                   help="run the custom actions with ACTIVE_UPGRADE_DRY_RUN=1")
    p.set_defaults(func=cmd_plan)
