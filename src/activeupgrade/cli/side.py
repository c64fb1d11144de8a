"""``au shell``, ``au exec -- CMD``, ``au restart-upgrade-side``, ``au side writes``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from activeupgrade import proc
from activeupgrade.api.client import Client
from activeupgrade.cli.follow import operate
from activeupgrade.cli.output import print_json, progress
from activeupgrade.errors import UsageError
from activeupgrade.model.states import Operation


def _exec(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("nothing to run", hint="au exec -- COMMAND [ARGS...]")

    def show(stream: str, line: str) -> None:
        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write(line + "\n")
        out.flush()

    r = operate(Client.from_env(), Operation.EXEC, {"argv": argv, "timeout": args.timeout,
                                                    "user": args.user}, on_output=show)
    rc: int = r["returncode"]
    return rc if rc >= 0 else 128 - rc


def _terminal() -> str:
    try:
        return os.ttyname(0)
    except OSError:
        return ""


def _shell(args: argparse.Namespace) -> int:
    """Interactive: the shell runs on this terminal; the daemon logs it opened and ended."""
    client = Client.from_env()
    opened: dict[str, Any] = client.post("/side/shell", {
        "phase": "open", "user": args.user, "terminal": _terminal(),
        "operator": os.environ.get("SUDO_USER") or os.environ.get("USER", "")})
    env = dict(opened["env"])
    env["TERM"] = os.environ.get("TERM", "xterm")
    began = time.monotonic()
    code = 125
    try:
        code = proc.interactive(opened["argv"], env=env, cwd=opened.get("cwd") or None)
    finally:
        client.post("/side/shell", {"phase": "close", "entry": opened["entry"],
                                    "returncode": code,
                                    "seconds": round(time.monotonic() - began, 3)})
    return code


def _restart(args: argparse.Namespace) -> int:
    with progress(quiet=args.json) as bar:
        r = operate(Client.from_env(), Operation.RESTART_UPGRADE_SIDE, display=bar)
    if args.json:
        print_json(r)
    else:
        print(f"Upgrade Side restarted: {r['partner_state']} ({r['detail']})")
    return 0


def writes_lines(w: dict[str, Any]) -> list[str]:
    out = [w["summary"]]
    for item in w["outside"]:
        out.append(f"  {item['change']:<9} {item['path']}")
    if w["data"]:
        out.append("In place of data volumes (scratch, not kept):")
        out += [f"  {item['change']:<9} {item['path']}" for item in w["data"]]
    if w.get("truncated"):
        out.append("  … (more not listed; see --json counts)")
    return out


def _writes(args: argparse.Namespace) -> int:
    w: dict[str, Any] = Client.from_env().get("/side/writes")
    if args.json:
        print_json(w)
    else:
        print("\n".join(writes_lines(w)))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e = sub.add_parser("exec", help="run a command on the Upgrade Side")
    e.add_argument("--timeout", type=float, default=3600.0)
    e.add_argument("--user", default="", help="run as this user of the Upgrade Side")
    e.add_argument("argv", nargs=argparse.REMAINDER)
    e.set_defaults(func=_exec)
    s = sub.add_parser("shell", help="interactive shell on the Upgrade Side")
    s.add_argument("--user", default="", help="log in as this user of the Upgrade Side")
    s.set_defaults(func=_shell)
    r = sub.add_parser("restart-upgrade-side", help="stop, rebuild and boot the Upgrade Side")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_restart)
    side = sub.add_parser("side", help="the Upgrade Side: what it wrote outside the volumes")
    side_sub = side.add_subparsers(dest="side_command", metavar="COMMAND")
    w = side_sub.add_parser("writes", help="paths written outside the managed volumes "
                            "(never kept)")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=_writes)
