"""``au demo``: the main job, a full active upgrade of the bundled shop under live load."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from activeupgrade.cli.output import print_json
from activeupgrade.demo.orchestrator import Demo, kept_instructions


def cmd_demo(args: argparse.Namespace) -> int:
    if args.clean:
        left = Demo.left_by_keep(Path(args.clean))
        left.clean_up()
        left.au.close()
        for problem in left.report.problems:
            print(f"au demo --clean: {problem}", file=sys.stderr)
        print(f"removed the demo in {args.clean}" if not left.report.problems else
              f"the demo in {args.clean} was not completely removed")
        return 0 if not left.report.problems else 1
    demo = Demo(keep=args.keep, progress=not args.json)
    report = demo.run()
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.render())
        if report.kept:
            print(kept_instructions(report))
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="upgrade the bundled shop service under live load (commit, then abort)",
        description="Runs a whole active upgrade of a bundled demo service in its own "
        "temporary instance: adopt, split, install inside the Upgrade Side, merge, commit, "
        "finish, then a session that aborts from merge. Exits non-zero if any client "
        "request failed or any order was lost.",
    )
    p.add_argument("--keep", action="store_true",
                   help="leave the instance, the shop and the daemon running for exploring")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--clean", metavar="DIR",
                   help="end and remove a demo left by --keep (its 'Demo tree' folder)")
    p.set_defaults(func=cmd_demo)
