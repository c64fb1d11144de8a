"""The mount system calls a live path is made of, called directly (never the ``mount``
program: a volume being switched may hold that program, the interpreter and its libraries).

``mount(2)``, ``umount2(2)``, ``open_tree(2)`` and ``move_mount(2)`` have no wrapper in
Python's ``os`` module, so they are called through ``ctypes``. Each failure is an
``OSError`` carrying errno and the operation in words.

The pieces a live path needs:

- ``bind_private``: a non-recursive bind of a directory elsewhere, made private at once
  (a shared bind of ``/etc`` would receive every later mount on ``/etc`` by propagation);
- ``underlying``: a detached clone of the directory *under* whatever is mounted on a path
  (the original directory stays in place as replica A, even while B is shown on top);
- ``attach_tree``: one ``move_mount`` that puts an assembled tree on a path; a lookup sees
  the old tree or the new one, never a bare directory in between;
- ``submounts``: the mounts below a path (nspawn's ``/etc/resolv.conf`` bind, say), so that
  a switch carries them onto the new tree.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from dataclasses import dataclass

from activeupgrade.libc import LIBC, checked, path_bytes

MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_EMPTY_PATH = 0x1000

_SYSCALLS = {"open_tree": 428, "move_mount": 429, "mount_setattr": 442}
"""System call numbers (the same on every architecture since Linux 5.2's unified table)."""
_ARCHES = ("x86_64", "aarch64", "riscv64", "ppc64le", "s390x", "armv7l", "i686")





def _syscall(name: str, *args: object) -> int:
    if platform.machine() not in _ARCHES:
        raise OSError(errno.ENOSYS, f"{name}: unknown system call number on "
                      f"{platform.machine()}")
    return int(LIBC.syscall(ctypes.c_long(_SYSCALLS[name]), *args))


def bind(source: str, target: str, *, recursive: bool = False) -> None:
    """mount(2) with MS_BIND: ``target`` shows ``source`` (its submounts when recursive)."""
    flags = MS_BIND | (MS_REC if recursive else 0)
    checked(LIBC.mount(path_bytes(source), path_bytes(target), None, ctypes.c_ulong(flags), None),
           f"bind {source} on {target}")


def make_private(target: str) -> None:
    """Mount events under ``target`` no longer propagate to or from other mounts."""
    checked(LIBC.mount(None, path_bytes(target), None, ctypes.c_ulong(MS_PRIVATE), None),
           f"make {target} private")


def detach(target: str) -> None:
    """umount2(2) with MNT_DETACH: the mount on ``target`` leaves the tree in one step;
    processes holding files or a working directory in it keep them."""
    checked(LIBC.umount2(path_bytes(target), ctypes.c_int(MNT_DETACH)), f"unmount {target}")


def clone(path: str, *, recursive: bool = False, at: int = AT_FDCWD) -> int:
    """open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at ``path`` (relative
    to the detached tree ``at`` when given); returns its descriptor (close it)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    return checked(_syscall("open_tree", ctypes.c_int(at), path_bytes(path), ctypes.c_uint(flags)),
                  f"clone the mount at {path}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def make_tree_private(tree: int) -> None:
    """mount_setattr(2): every mount of the detached ``tree`` private. A clone of a shared
    mount is a peer of it: without this, what is mounted into the tree would also appear
    in the mount it was cloned from (a submount carried onto B would land in replica B's
    own folder, read-only, and stop its next resync)."""
    attr = _MountAttr(0, 0, MS_PRIVATE, 0)
    checked(_syscall("mount_setattr", ctypes.c_int(tree), b"",
                    ctypes.c_uint(AT_EMPTY_PATH | AT_RECURSIVE), ctypes.byref(attr),
                    ctypes.c_size_t(ctypes.sizeof(attr))), "make a detached tree private")


def move(tree: int, target: str, *, at: int = AT_FDCWD) -> None:
    """move_mount(2): attach the detached ``tree`` on ``target`` (inside ``at``)."""
    checked(_syscall("move_mount", ctypes.c_int(tree), b"", ctypes.c_int(at), path_bytes(target),
                    ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), f"attach a mount on {target}")


def underlying(path: str) -> int:
    """A detached clone of the directory at ``path`` as it is on its parent's filesystem,
    without what is mounted on it or below it (close the descriptor)."""
    parent, name = os.path.split(os.path.normpath(path))
    top = clone(parent)
    try:
        return clone(name, at=top)
    finally:
        os.close(top)


def bind_private(source: str, target: str) -> None:
    """``target`` shows the directory ``source`` itself (non-recursive), made private."""
    bind(source, target)
    make_private(target)


def bind_underlying(path: str, target: str) -> None:
    """``target`` shows the directory under whatever is mounted on ``path``, private."""
    tree = underlying(path)
    try:
        move(tree, target)
    finally:
        os.close(tree)
    make_private(target)


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo."""

    id: int
    parent: int
    device: str
    """major:minor of the filesystem."""
    root: str
    """The folder of the filesystem shown at the mount point."""
    point: str
    """Where it is mounted (as this process sees it)."""
    fstype: str
    source: str


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 1 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse(text: str) -> list[Mount]:
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        sep = fields.index("-")
        found.append(Mount(
            id=int(fields[0]), parent=int(fields[1]), device=fields[2],
            root=unescape(fields[3]), point=os.path.normpath(unescape(fields[4])),
            fstype=fields[sep + 1], source=unescape(fields[sep + 2]),
        ))
    return found


def current() -> list[Mount]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        return parse(fh.read())


def table() -> list[Mount]:
    """The mounts of this mount namespace, in mount order."""
    return current()


def mounted(path: str) -> bool:
    """True when something is mounted exactly at ``path``."""
    target = os.path.realpath(path)
    return any(m.point == target for m in table())


def submounts(path: str) -> list[str]:
    """Mount points strictly below ``path`` made on the filesystem that holds ``path``
    (their own submounts go with them), relative to ``path``. Meant for a path with
    nothing mounted on it: what a lookup below it reaches today."""
    target = os.path.realpath(path).rstrip("/")
    mounts = table()
    points = {m.id: m.point for m in mounts}
    out: list[str] = []
    for m in mounts:
        parent = points.get(m.parent, "")
        if m.point.startswith(target + "/") and not parent.startswith(target + "/") \
                and parent != target:
            rel = m.point[len(target) + 1:]
            if rel not in out:
                out.append(rel)
    return out


def assemble(source: str, carried: list[tuple[str, str]]) -> int:
    """A detached clone of ``source`` with each (mount point, path relative to ``source``)
    of ``carried`` cloned onto it where that path exists in ``source``; returns the tree
    (close it). A kernel that refuses mounting into a detached tree (before 6.15) gets the
    tree without them."""
    tree = clone(source)
    try:
        make_tree_private(tree)
        for point, rel in carried:
            if not os.path.lexists(os.path.join(source, rel)):
                continue
            sub = clone(point, recursive=True)
            try:
                move(sub, rel, at=tree)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
            finally:
                os.close(sub)
    except BaseException:
        os.close(tree)
        raise
    return tree
