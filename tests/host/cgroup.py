"""A cgroup of its own for each booted host.

``systemd-nspawn --keep-unit --register=no`` (the build machine's PID 1 is not systemd)
runs the container in nspawn's own cgroup and creates ``payload/`` (the container's tree)
and ``supervisor/`` beneath it. Hosts booted from one process would therefore share one
``payload`` cgroup, managed by several systemd instances at once: two hosts booting
together fail units with ``219/CGROUP`` (e.g. ``systemd-sysusers.service``), and a unit of
one host sees the other's processes in "its" cgroup. So nspawn is started through
``python tests/host/cgroup.py DIR... -- ARGV``, which moves itself into a new cgroup per
host (``au-host-NAME`` under this process's cgroup, in the ``name=systemd`` and the
``cgroup2`` hierarchies) and then executes ``ARGV``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path


def hierarchies() -> list[Path]:
    """This process's cgroup in each hierarchy nspawn uses (``name=systemd``, cgroup2)."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        own[controllers] = path
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        mount, fstype, options = fields[4], tail[0], tail[-1].split(",")
        if fstype == "cgroup2" and "" in own:
            found.append(Path(mount) / own[""].lstrip("/"))
        elif fstype == "cgroup" and "name=systemd" in options and "name=systemd" in own:
            found.append(Path(mount) / own["name=systemd"].lstrip("/"))
    return found


def host_cgroups(name: str) -> list[Path]:
    """The cgroups of host ``name`` (made when missing)."""
    dirs = [parent / f"au-host-{name}" for parent in hierarchies()]
    for d in dirs:
        d.mkdir(exist_ok=True)
    return dirs


def wrap(name: str, argv: list[str]) -> list[str]:
    """``argv`` run in host ``name``'s own cgroups."""
    dirs = [str(d) for d in host_cgroups(name)]
    return [sys.executable, str(Path(__file__).resolve()), *dirs, "--", *argv]


def remove(name: str) -> None:
    """Remove host ``name``'s cgroups once nothing runs in them (deepest first)."""
    for top in (parent / f"au-host-{name}" for parent in hierarchies()):
        if not top.is_dir():
            continue
        for folder, _subdirs, _files in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def main(args: list[str]) -> None:
    split = args.index("--")
    for d in args[:split]:
        Path(d, "cgroup.procs").write_text("0\n")
    argv = args[split + 1:]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
