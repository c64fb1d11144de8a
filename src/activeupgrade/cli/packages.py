"""``au packages stage [NAMES…]``, ``au packages show``, ``au packages clear``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli.output import print_json
from activeupgrade.units import human_bytes


def _lines(s: dict[str, Any]) -> list[str]:
    if not s["packages"]:
        return ["Nothing is staged for the Upgrade Side (`au packages stage`)."]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["at"]))
    what = " ".join(s["names"]) if s["names"] else "the upgrade (apt-get upgrade)"
    out = [f"{len(s['packages'])} package(s), {human_bytes(s['bytes'])}, staged at {when} "
           f"for {what}; lists {s['lists']}:"]
    out += [f"  {p['file']}" for p in s["packages"]]
    if s.get("restart_needed"):
        out.append("The Upgrade Side sees them after `au restart-upgrade-side`.")
    return out


def _stage(args: argparse.Namespace) -> int:
    r = Client.from_env().post("/packages/stage", {"names": args.names,
                                                  "update": args.update})
    print_json(r) if args.json else print("\n".join(_lines(r)))
    return 0


def _show(args: argparse.Namespace) -> int:
    r = Client.from_env().get("/packages")
    print_json(r) if args.json else print("\n".join(_lines(r)))
    return 0


def _clear(args: argparse.Namespace) -> int:
    Client.from_env().post("/packages/clear", {})
    print("Staged packages removed.")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser("packages", help="packages staged for the Upgrade Side's apt "
                         "(it has no network)")
    cmds = top.add_subparsers(dest="packages_command", metavar="COMMAND")
    st = cmds.add_parser("stage", help="download what apt-get upgrade (or install NAMES) "
                         "would install, on the Production Side")
    st.add_argument("names", nargs="*", metavar="NAME")
    st.add_argument("--update", action="store_true",
                    help="fetch apt's lists first (into the staging folder only)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_stage)
    sh = cmds.add_parser("show", help="what is staged")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=_show)
    cl = cmds.add_parser("clear", help="remove what is staged")
    cl.set_defaults(func=_clear)
