"""The live path of a volume: which replica it shows, and switching it.

Two ways, chosen at adoption and shown by ``au volume show``:

- ``bind`` (root): the original directory stays where it is and *is* replica A: the
  replica folder's ``a`` is a private, non-recursive bind of it (so a copy from A sees the
  directory's own files, not what is mounted inside it). Showing B mounts replica B on
  top of the path in one ``move_mount`` (the submounts found there, such as a container's
  ``/etc/resolv.conf`` bind, carried onto it first); showing A again detaches that mount
  in one ``umount2``. Every new lookup of the path sees one replica or the other, never an
  empty folder, and no program is run (the volume may hold ``mount`` and the interpreter).
  After a reboot the path shows the original directory, which is replica A: nothing that
  starts before ``reattach`` writes anywhere but into a replica.
- ``symlink`` (unprivileged): the live path is a symlink to the live replica, switched
  atomically by renaming a new symlink over it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from activeupgrade.errors import VolumeError
from activeupgrade.platform.volumes import mounts

BIND = "bind"
SYMLINK = "symlink"
ATTACH_HINT = "Run `au volume attach {name}`: it binds the original directory and shows " \
              "the replica the volume must show again."


def default_mode() -> str:
    return BIND if os.geteuid() == 0 else SYMLINK


def mounted(path: str | Path) -> bool:
    """True when something is mounted exactly at ``path`` (in this mount namespace)."""
    return mounts.mounted(os.fspath(path))


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


def bind_original(path: str, replica_a: str) -> bool:
    """Make ``replica_a`` the original directory at ``path`` (the one under any mount on
    it); False when it already is. Refuses a replica folder with content of its own."""
    if mounted(replica_a):
        return False
    os.makedirs(replica_a, mode=0o755, exist_ok=True)
    if os.listdir(replica_a):
        raise VolumeError(
            f"{replica_a} is a folder with content, not a bind of the original {path}",
            hint="It was made by an earlier version: release the volume "
                 "(`au volume release`) and adopt it again.")
    try:
        mounts.bind_underlying(path, replica_a)
    except OSError as exc:
        if exc.errno != errno.EINVAL or mounted(path):
            raise
        mounts.bind_private(path, replica_a)  # a kernel before 6.15: nothing on top yet
    return True


def _show_b(path: str, replica_b: str) -> None:
    if mounted(path):
        # something on top already (a mount of B lost track of, or foreign): B goes on
        # top of it, one step for every lookup
        mounts.bind_private(replica_b, path)
        return
    carried = [(os.path.join(path, rel), rel) for rel in mounts.submounts(path)]
    tree = mounts.assemble(replica_b, carried)
    try:
        mounts.move(tree, path)
    finally:
        os.close(tree)
    mounts.make_private(path)


def show(path: str | Path, replicas: dict[str, str], letter: str, mode: str) -> None:
    """Make ``path`` show replica ``letter``. In bind mode replica A is the original
    directory (bound first when it is not); in symlink mode ``path`` is absent, an empty
    dir or the volume's symlink."""
    p = Path(path)
    replica = replicas[letter]
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
    live = os.fspath(p)
    bind_original(live, replicas["a"])
    if current(live, replicas) == letter:
        return
    if letter == "b":
        _show_b(live, replica)
    else:
        while mounted(live) and current(live, replicas) != "a":
            mounts.detach(live)  # each step leaves the tree below it whole: in the end A
    _check_shown(live, replicas, letter)


def _check_shown(live: str, replicas: dict[str, str], letter: str) -> None:
    """The mount calls succeeded: a new lookup of ``live`` must now reach replica
    ``letter``. Otherwise say so, never report a switch that did not happen."""
    shown = current(live, replicas)
    if shown != letter:
        raise VolumeError(
            f"{live} does not show replica {letter} after switching to it (it shows "
            f"{'replica ' + shown if shown else 'neither replica'})",
            hint=ATTACH_HINT.format(name=live) + " If it fails again, see "
                 "/proc/self/mountinfo for what is mounted on the path.")


def unbind(path: str | Path, replicas: dict[str, str], mode: str) -> None:
    """Bind mode: leave the original directory alone at ``path`` (mounts of B detached,
    replica A's bind removed). Symlink mode: remove the symlink."""
    p = Path(path)
    if mode == SYMLINK:
        if p.is_symlink():
            p.unlink()
        return
    while mounted(os.fspath(p)):
        mounts.detach(os.fspath(p))
    while mounted(replicas["a"]):
        mounts.detach(replicas["a"])
