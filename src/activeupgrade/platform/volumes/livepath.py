"""The live path of a volume: which replica it shows, and switching it.

Two ways, chosen at adoption and shown by ``au volume show``:

- ``bind`` (root): the live path is a directory with the live replica bind-mounted on it.
  Switching lazily unmounts the old replica (processes that hold files or a working
  directory in it keep them) and binds the other one; the path is empty for the few
  milliseconds in between, which is why services are stopped at that moment.
- ``symlink`` (unprivileged): the live path is a symlink to the live replica, switched
  atomically by renaming a new symlink over it.
"""

from __future__ import annotations

import os
from pathlib import Path

from activeupgrade import proc
from activeupgrade.errors import VolumeError

BIND = "bind"
SYMLINK = "symlink"


def default_mode() -> str:
    return BIND if os.geteuid() == 0 else SYMLINK


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 0 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounted(path: str | Path) -> bool:
    """True when something is mounted exactly at ``path`` (in this mount namespace)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        return any(_unescape(line.split()[4]) == target for line in fh)


def current(path: str | Path, replicas: dict[str, str]) -> str | None:
    """Which replica ("a"/"b") ``path`` shows now, or None (neither: not attached)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    for letter, rp in replicas.items():
        try:
            r = os.stat(rp)
        except OSError:
            continue
        if (r.st_dev, r.st_ino) == (st.st_dev, st.st_ino):
            return letter
    return None


def attach(path: str | Path, replica: str | Path, mode: str) -> None:
    """Make ``path`` show ``replica`` (``path`` absent, an empty dir, or attached)."""
    p = Path(path)
    if mode == SYMLINK:
        tmp = p.with_name(f".{p.name}.au-link")
        tmp.unlink(missing_ok=True)
        os.symlink(os.fspath(replica), tmp)
        if p.exists() and not p.is_symlink():
            raise VolumeError(
                f"{p} is a real directory, not the volume's symlink",
                hint="Something replaced the live path; move it aside and re-run adopt.",
            )
        os.replace(tmp, p)
        return
    p.mkdir(exist_ok=True)
    while mounted(p):
        proc.run(["umount", "-l", os.fspath(p)], timeout=30)
    proc.run(["mount", "--bind", os.fspath(replica), os.fspath(p)], timeout=30)


def detach(path: str | Path, mode: str) -> None:
    """Remove the live path's link to its replica (leaves an empty dir in bind mode)."""
    p = Path(path)
    if mode == SYMLINK:
        if p.is_symlink():
            p.unlink()
        return
    while p.exists() and mounted(p):
        proc.run(["umount", "-l", os.fspath(p)], timeout=30)
