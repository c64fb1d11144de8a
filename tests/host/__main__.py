"""Test hosts by hand (as root, from the project's top folder)::

    python -m tests.host build [--recipe nginx]          # build (or find) the cached root
    python -m tests.host boot NAME [--recipe nginx] [--no-project]
    python -m tests.host enter NAME                      # a root shell inside
    python -m tests.host run NAME -- systemctl status nginx
    python -m tests.host reboot NAME                     # systemctl reboot, boot again
    python -m tests.host power-cut NAME                  # kill everything, boot again
    python -m tests.host probe NAME                      # what the kernel allows inside
    python -m tests.host stop NAME                       # poweroff, remove the copy
    python -m tests.host list
    python -m tests.host clean-cache                     # drop roots no recipe uses now

A host NAME lives in ``/var/tmp/au-test-hosts/NAME`` (``--dir`` to change) and keeps
running after the command returns; its console is ``console.log`` there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from activeupgrade import proc
from tests.host.cache import cache_dir, ensure_root, reflink_area, root_entry
from tests.host.machine import Host, HostError
from tests.host.recipe import RECIPES

HOSTS = Path("/var/tmp/au-test-hosts")
PROBE = Path(__file__).with_name("probe.py")


def _state(workdir: Path) -> dict[str, object]:
    try:
        data: dict[str, object] = json.loads((workdir / "host.json").read_text())
        return data
    except FileNotFoundError:
        raise HostError(f"no host in {workdir}: `python -m tests.host boot NAME` first") from None


def _leader(workdir: Path) -> int:
    leader = int(str(_state(workdir)["leader"]))
    if not leader or not proc.alive(leader):
        raise HostError(f"the host in {workdir} is not running")
    return leader


def _nsenter(workdir: Path, argv: list[str]) -> list[str]:
    return ["nsenter", "-t", str(_leader(workdir)), "-a", "--", *argv]


def _host(workdir: Path) -> Host:
    """The host a previous command made in ``workdir`` (not booted by this process)."""
    state = _state(workdir)
    host = Host(Path(str(state["root"])), name=str(state["name"]), workdir=workdir)
    host.persistent = True
    return host


def _respawn(workdir: Path) -> None:
    """Boot again a host that a previous command made."""
    host = _host(workdir)
    name = host.name
    report = host.boot()
    print(f"{name}: {report.state} in {report.seconds:.2f}s"
          + (f" (failed: {', '.join(report.failed)})" if report.failed else ""))


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while proc.alive(pid):
        if time.monotonic() > deadline:
            raise HostError(f"pid {pid} still running after {timeout}s")
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.host", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=HOSTS, help="where hosts live")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the cached root of a recipe")
    b.add_argument("--recipe", default="base", choices=sorted(RECIPES))
    bt = sub.add_parser("boot", help="create and boot a host")
    bt.add_argument("name")
    bt.add_argument("--recipe", default="base", choices=sorted(RECIPES))
    bt.add_argument("--no-project", action="store_true", help="do not install `au`")
    bt.add_argument("--loop-devices", action="store_true", help="bind the loop devices in")
    for cmd in ("enter", "reboot", "power-cut", "probe", "stop"):
        sub.add_parser(cmd).add_argument("name")
    r = sub.add_parser("run", help="run a command inside")
    r.add_argument("name")
    r.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("list")
    sub.add_parser("clean-cache", help="remove cached roots that no recipe uses now")
    args = ap.parse_args(argv)
    workdir = args.dir / getattr(args, "name", "")
    try:
        return _dispatch(args, workdir)
    except HostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, workdir: Path) -> int:
    if args.cmd == "build":
        recipe = RECIPES[args.recipe]
        began = time.monotonic()
        root = ensure_root(recipe)
        info = json.loads((root_entry(recipe) / "build.json").read_text())
        print(f"{root} ({time.monotonic() - began:.1f}s now; built in {info['seconds']}s)")
        return 0
    if args.cmd == "clean-cache":
        keep = {r.key() for r in RECIPES.values()}
        area = reflink_area()
        # With the XFS area mounted, roots outside it (full-copy fallback) are unused.
        unused = [(cache_dir() / "roots", set()), *([(area / "roots", keep)] if area else [])]
        for folder, kept in unused if area else [(cache_dir() / "roots", keep)]:
            for entry in sorted(folder.glob("*")):
                # KEY.*.partial: a build under way (its lock says so); never touched here.
                if entry.is_dir() and "." not in entry.name and entry.name not in kept:
                    print(f"removing {entry}")
                    shutil.rmtree(entry)
        return 0
    if args.cmd == "list":
        print(f"cache: {cache_dir()}")
        for d in sorted(args.dir.glob("*/host.json")):
            st = json.loads(d.read_text())
            up = bool(st.get("leader")) and proc.alive(int(st["leader"]))
            print(f"{d.parent.name}: {'running' if up else 'stopped'} (leader {st['leader']})")
        return 0
    if args.cmd == "boot":
        host = Host.create(RECIPES[args.recipe], workdir, name=args.name,
                           loop_devices=args.loop_devices, persistent=True)
        print(f"copied in {host.timings.copy:.2f}s")
        report = host.boot()
        print(f"{args.name}: {report.state} in {report.seconds:.2f}s, leader {host.leader}"
              + (f" (failed: {', '.join(report.failed)})" if report.failed else ""))
        if not args.no_project:
            print(f"au installed in {host.install_project():.1f}s")
        print(f"enter: python -m tests.host enter {args.name}")
        return 0
    if args.cmd == "enter":
        argv = _nsenter(workdir, ["/bin/bash", "-l"])
        os.execvpe(argv[0], argv, {"TERM": os.environ.get("TERM", "xterm"),
                                   "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
                                           ":/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"})
    if args.cmd == "run":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return subprocess.call(_nsenter(workdir, command))
    if args.cmd == "probe":
        shutil.copy(PROBE, _host(workdir).path("/root/probe.py"))
        for how, prefix in (("nsenter", []), ("unit", ["systemd-run", "--quiet", "--wait",
                                                       "--pipe", "--collect"])):
            out = subprocess.run(_nsenter(workdir, [*prefix, "python3", "/root/probe.py"]),
                                 capture_output=True, text=True, check=False)
            print(f"== {how}")
            for check, result in json.loads(out.stdout).items():
                print(f"  {check:48} {result}")
        return 0
    state = _state(workdir)
    nspawn = int(str(state["nspawn"]))
    if args.cmd in ("reboot", "power-cut"):
        leader = _leader(workdir)
        began = time.monotonic()
        if args.cmd == "reboot":
            subprocess.call(_nsenter(workdir, ["systemctl", "reboot"]))
        else:
            os.kill(leader, signal.SIGKILL)
        _wait_gone(nspawn, 120)
        print(f"down in {time.monotonic() - began:.2f}s")
        _respawn(workdir)
        return 0
    if args.cmd == "stop":
        if proc.alive(nspawn):
            os.kill(nspawn, signal.SIGTERM)
            _wait_gone(nspawn, 60)
        _host(workdir).destroy()
        shutil.rmtree(workdir)
        return 0
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
