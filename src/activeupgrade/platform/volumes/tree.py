"""A replica's tree read as a flat map ``relative path → lstat``, plus the per-entry facts
resync and verify compare (type, xattrs, link targets).

Only ``lstat`` is used for the scan: it is the one syscall per entry that every decision
needs; xattrs, link targets and contents are read only for entries that may differ.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from pathlib import Path

Stats = dict[str, os.stat_result]
"""Relative path ("" is the root itself) → lstat result."""

Sig = tuple[int, int, int, int, int]
"""(inode, ctime_ns, mtime_ns, size, mode): changes whenever content or metadata change."""

RACY_NS = 50_000_000
"""Where the clock granularity of a filesystem is unknown: a signature recorded within this
window after the entry's last change is not trusted (a second change in the same clock
tick would leave it unchanged: the "racily clean" problem)."""

def racy_window(folder: str | os.PathLike[str], known: dict[int, int] | None = None) -> int:
    """The racy window of ``folder``'s filesystem in ns (``known``: device → window
    measured before, by its owner ``state.SyncState``; it is read and filled).

    A file in ``folder`` (ours, never a live tree) is changed and stat'ed repeatedly. Where
    every change after a stat gets a new ctime (fine-grained or "multigrain" timestamps),
    a recorded signature can be trusted at once (0); else twice the clock tick seen."""
    dev = os.stat(folder).st_dev
    if known is not None and dev in known:
        return known[dev]
    probe = os.path.join(folder, f".au-clock-{os.getpid()}")
    try:
        with open(probe, "wb"):
            pass
        seen: list[int] = []
        for _ in range(64):
            os.utime(probe)
            seen.append(os.lstat(probe).st_ctime_ns)
    except OSError:
        return RACY_NS
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass
    distinct = sorted(set(seen))
    if len(distinct) == len(seen):
        window = 0
    else:
        steps = [b - a for a, b in itertools.pairwise(distinct)]
        window = min(RACY_NS, 2 * max(steps, default=RACY_NS // 2))
    if known is not None:
        known[dev] = window
    return window


def sig(st: os.stat_result) -> Sig:
    return (st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size, st.st_mode)


def join(root: str, rel: str) -> str:
    return os.path.join(root, rel) if rel else root


def scan(root: str | Path) -> Stats:
    """Every entry under ``root`` (not following symlinks, not crossing into other trees).

    Directories are opened and entries stat'ed relative to their directory's descriptor:
    the kernel resolves one name per ``lstat`` instead of a whole path.
    """
    base = os.fspath(root)
    out: Stats = {"": os.lstat(base)}
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    stack = [("", os.open(base, flags))]
    while stack:
        rel, fd = stack.pop()
        try:
            with os.scandir(fd) as it:
                for de in it:
                    child = f"{rel}/{de.name}" if rel else de.name
                    try:
                        st = de.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    out[child] = st
                    if stat.S_ISDIR(st.st_mode):
                        try:
                            stack.append((child, os.open(de.name, flags, dir_fd=fd)))
                        except FileNotFoundError:
                            del out[child]
        finally:
            os.close(fd)
    return out


def kind(mode: int) -> str:
    """The file type of ``mode`` as a word (for messages and comparisons)."""
    return {
        stat.S_IFREG: "file",
        stat.S_IFDIR: "dir",
        stat.S_IFLNK: "symlink",
        stat.S_IFIFO: "fifo",
        stat.S_IFCHR: "char-device",
        stat.S_IFBLK: "block-device",
        stat.S_IFSOCK: "socket",
    }.get(stat.S_IFMT(mode), "unknown")


def xattrs(path: str | int) -> dict[str, bytes]:
    """Extended attributes of ``path`` itself, or of an open file descriptor (empty where
    the filesystem has none)."""
    follow = isinstance(path, int)  # a descriptor: follow_symlinks must stay True
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM, errno.ENOENT):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in names:
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return out


def same_content(a: str, b: str, chunk: int = 1 << 20) -> bool:
    """Byte-for-byte comparison of two regular files."""
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        while True:
            x = fa.read(chunk)
            y = fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


def tree_bytes(stats: Stats) -> int:
    return sum(st.st_size for st in stats.values() if stat.S_ISREG(st.st_mode))
