"""``au shell``, ``au exec -- CMD``, ``au restart-upgrade-side``."""

from __future__ import annotations

import argparse
import os
import sys

from activeupgrade.api.client import Client
from activeupgrade.cli.output import print_json, progress
from activeupgrade.errors import UsageError
from activeupgrade.instance import Instance
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

    r = Client.from_env().operate(Operation.EXEC, {"argv": argv, "timeout": args.timeout},
                                  on_output=show)
    rc: int = r["returncode"]
    return rc if rc >= 0 else 128 - rc


def _shell(args: argparse.Namespace) -> int:
    """Interactive: this process becomes the shell inside the Upgrade Side."""
    from activeupgrade.platform.side import namespace

    instance = Instance.from_env()
    rec = namespace.read(instance)
    if not rec or rec.get("state") != "up":
        raise UsageError("the Upgrade Side is not up", hint="It exists in Split; `au status`.")
    env, cwd = namespace.exec_env(instance)
    env["TERM"] = os.environ.get("TERM", "xterm")
    env["PS1"] = "[upgrade side] \\u@\\h:\\w\\$ "
    shell = os.environ.get("SHELL", "/bin/bash")
    argv = [*namespace.enter_argv(instance), shell, "-i"]
    if cwd:
        os.chdir(cwd)
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


def _restart(args: argparse.Namespace) -> int:
    with progress(quiet=args.json) as bar:
        r = Client.from_env().operate(Operation.RESTART_UPGRADE_SIDE, on_progress=bar)
    if args.json:
        print_json(r)
    else:
        print(f"Upgrade Side restarted: {r['partner_state']} ({r['detail']})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e = sub.add_parser("exec", help="run a command on the Upgrade Side")
    e.add_argument("--timeout", type=float, default=3600.0)
    e.add_argument("argv", nargs=argparse.REMAINDER)
    e.set_defaults(func=_exec)
    s = sub.add_parser("shell", help="interactive shell on the Upgrade Side")
    s.set_defaults(func=_shell)
    r = sub.add_parser("restart-upgrade-side", help="stop, rebuild and boot the Upgrade Side")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_restart)
