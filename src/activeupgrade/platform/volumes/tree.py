"""A replica's tree read as a map ``relative path → entry``, plus the per-entry facts
resync and verify compare (type, xattrs, link targets).

Only ``lstat`` is used for the scan: it is the one syscall per entry that every decision
needs; xattrs, link targets and contents are read only for entries that may differ. (Where
a tree is tracked, the scan is one ``statx`` per entry instead, which gives the entry's
immutable and append-only attributes with the same call: ``STATX``.)

A tree held between calls (``Listing``: what change tracking keeps of every replica) is
compact: per directory, each name → one packed record (``REC``: inode, ctime, mtime,
size, mode, links, owner, group), 46 bytes (80 with the object's header) with no Python
object per field; an ``os.stat_result`` with its numbers costs 700. A device's number
takes the place of its size (a device has none), so that a record fits a smaller
allocation. The first ``SIG_LEN`` bytes of a record are the entry's signature (``sig``),
as the manifest stores it.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import stat
import struct
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple, Protocol

from activeupgrade.libc import LIBC, path_bytes

Sig = bytes
"""(inode, ctime_ns, mtime_ns, size or device number, mode) packed (``SIG``): changes
whenever content or metadata change."""
SIG = struct.Struct("=QqqqH")
SIG_LEN = SIG.size
REC = struct.Struct("=QqqqHIII")
"""An entry's record: its signature, then links, owner, group."""
_MODE_LINKS = struct.Struct("=HI")
_MODE_AT = SIG_LEN - 2
_INO = struct.Struct("=Q")
_SIZE = struct.Struct("=q")


class StatLike(Protocol):
    """What resync, verify and copy read of an entry: an ``os.stat_result`` or an
    ``Info`` decoded from a record."""

    @property
    def st_ino(self) -> int: ...
    @property
    def st_ctime_ns(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_mode(self) -> int: ...
    @property
    def st_nlink(self) -> int: ...
    @property
    def st_uid(self) -> int: ...
    @property
    def st_gid(self) -> int: ...
    @property
    def st_rdev(self) -> int: ...


class Info(NamedTuple):
    """A record decoded (the fields an ``os.stat_result`` has under the same names)."""

    st_ino: int
    st_ctime_ns: int
    st_mtime_ns: int
    st_size: int
    st_mode: int
    st_nlink: int
    st_uid: int
    st_gid: int
    st_rdev: int


def record(st: StatLike) -> bytes:
    """The packed record of ``st``."""
    return REC.pack(st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_rdev or st.st_size,
                    st.st_mode, st.st_nlink, st.st_uid, st.st_gid)


def info(rec: bytes) -> Info:
    ino, ctime, mtime, size, mode, links, uid, gid = REC.unpack(rec)
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return Info(ino, ctime, mtime, 0, mode, links, uid, gid, size)
    return Info(ino, ctime, mtime, size, mode, links, uid, gid, 0)


def rec_mode(rec: bytes) -> int:
    mode: int = _MODE_LINKS.unpack_from(rec, _MODE_AT)[0]
    return mode


def rec_mode_links(rec: bytes) -> tuple[int, int]:
    out: tuple[int, int] = _MODE_LINKS.unpack_from(rec, _MODE_AT)
    return out


STATX = struct.Struct("=8xQIIIH2xQQ48xqI4xqI4xII")
"""What a record needs of a struct statx, and the attributes: stx_attributes, nlink, uid,
gid, mode, ino, size, ctime (s, ns), mtime (s, ns), rdev (major, minor)."""
STATX_FLAGS = 0x100 | 0x4000
"""AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC."""
STATX_MASK = 0x7FF
"""STATX_BASIC_STATS."""
STATX_BUFFER = 256
"""sizeof(struct statx)."""
IMMUTABLE, APPEND_ONLY = 0x10, 0x20
"""STATX_ATTR_IMMUTABLE, STATX_ATTR_APPEND (``chattr +i``, ``+a``)."""
UNCHANGEABLE = IMMUTABLE | APPEND_ONLY
"""The attributes no resync can get past: the entry cannot be changed, replaced or
removed (or, append-only, only grown)."""


ATTRIBUTES = struct.Struct("=8xQ")
"""``stx_attributes`` alone (a walk that needs nothing else of the entry)."""
AT_FDCWD = -100


class Entry(NamedTuple):
    """One entry as one ``statx`` read it: its record and its ``UNCHANGEABLE``
    attributes."""

    rec: bytes
    attrs: int


def from_statx(buf: ctypes.Array[ctypes.c_char]) -> tuple[bytes, int, int, int]:
    """(record, ``UNCHANGEABLE`` attributes, mode, links) of the struct statx in ``buf``
    (the record ``lstat`` would make: a device's number in place of its size)."""
    (attrs, links, uid, gid, mode, ino, size, c_s, c_ns, m_s, m_ns, major,
     minor) = STATX.unpack_from(buf)
    rec = REC.pack(ino, c_s * 1_000_000_000 + c_ns, m_s * 1_000_000_000 + m_ns,
                   os.makedev(major, minor) if major or minor else size, mode, links,
                   uid, gid)
    return rec, attrs & UNCHANGEABLE, mode, links


def entry(path: str) -> Entry:
    """``path``'s ``Entry`` (not followed if a symlink); the OSError ``lstat`` would
    raise (FileNotFoundError: gone)."""
    buf = ctypes.create_string_buffer(STATX_BUFFER)
    if LIBC.statx(AT_FDCWD, path_bytes(path), STATX_FLAGS, STATX_MASK, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    rec, attrs, _, _ = from_statx(buf)
    return Entry(rec, attrs)


def rec_ino(rec: bytes) -> int:
    ino: int = _INO.unpack_from(rec, 0)[0]
    return ino


def rec_ctime(rec: bytes) -> int:
    ctime: int = _SIZE.unpack_from(rec, 8)[0]
    return ctime


def rec_size(rec: bytes) -> int:
    size: int = _SIZE.unpack_from(rec, 24)[0]
    return size


ROOT = "\0"
"""The key under which a ``Listing`` keeps the root's own record (no name has a NUL)."""


def split(rel: str) -> tuple[str, str]:
    """(directory key, name) of ``rel`` in a ``Listing``."""
    if not rel:
        return ROOT, ""
    head, _, tail = rel.rpartition("/")
    return head, tail


class Listing(Mapping[str, Info]):
    """A tree's entries by directory: ``dirs[directory][name]`` is the entry's record
    (``dirs[ROOT][""]`` the root's own). As a mapping: relative path → ``Info``."""

    __slots__ = ("dirs",)

    def __init__(self) -> None:
        self.dirs: dict[str, dict[str, bytes]] = {}

    def rec(self, rel: str) -> bytes | None:
        head, name = split(rel)
        kids = self.dirs.get(head)
        return None if kids is None else kids.get(name)

    def __getitem__(self, rel: str) -> Info:
        rec = self.rec(rel)
        if rec is None:
            raise KeyError(rel)
        return info(rec)

    def __contains__(self, rel: object) -> bool:
        return isinstance(rel, str) and self.rec(rel) is not None

    def __len__(self) -> int:
        return sum(len(kids) for kids in self.dirs.values())

    def __iter__(self) -> Iterator[str]:
        for rel, _ in self.recs():
            yield rel

    def recs(self) -> Iterator[tuple[str, bytes]]:
        """(relative path, record) of every entry."""
        for head, kids in self.dirs.items():
            if head == ROOT:
                yield from kids.items()
                continue
            prefix = f"{head}/" if head else ""
            for name, rec in kids.items():
                yield prefix + name, rec

    def sig(self, rel: str) -> Sig | None:
        rec = self.rec(rel)
        return None if rec is None else rec[:SIG_LEN]

    def put(self, rel: str, rec: bytes) -> None:
        """Set ``rel``'s record (a new name or directory kept as an interned string: see
        ``watch.Tracker._scan_dir``)."""
        head, name = split(rel)
        kids = self.dirs.get(head)
        if kids is None:
            kids = self.dirs[sys.intern(head)] = {}
        kids[sys.intern(name)] = rec

    def regular_bytes(self) -> int:
        """The size of every regular file."""
        s_isreg = stat.S_ISREG
        return sum(rec_size(r) for kids in self.dirs.values() for r in kids.values()
                   if s_isreg(rec_mode(r)))


class Sigs(Mapping[str, Sig]):
    """The signatures of a ``Listing``'s entries (a view: nothing copied)."""

    __slots__ = ("listing",)

    def __init__(self, listing: Listing) -> None:
        self.listing = listing

    def __getitem__(self, rel: str) -> Sig:
        out = self.listing.sig(rel)
        if out is None:
            raise KeyError(rel)
        return out

    def get(self, rel: str, default: Sig | None = None) -> Sig | None:  # type: ignore[override]
        out = self.listing.sig(rel)
        return default if out is None else out

    def __contains__(self, rel: object) -> bool:
        return rel in self.listing

    def __len__(self) -> int:
        return len(self.listing)

    def __iter__(self) -> Iterator[str]:
        return iter(self.listing)

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


def sig(st: StatLike) -> Sig:
    return SIG.pack(st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_rdev or st.st_size,
                    st.st_mode)


def join(root: str, rel: str) -> str:
    return os.path.join(root, rel) if rel else root


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""How every walk of a tree opens a directory: never through a symlink."""


def read_dir(fd: int) -> tuple[dict[str, bytes], list[str]]:
    """The entries of the open directory ``fd``: name → record (each ``lstat`` relative
    to ``fd``: the kernel resolves one name), and the names of those that are
    directories. An entry gone meanwhile is left out."""
    kids: dict[str, bytes] = {}
    subdirs: list[str] = []
    pack, s_isdir = REC.pack, stat.S_ISDIR
    with os.scandir(fd) as it:
        for de in it:
            try:
                st = de.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            kids[de.name] = pack(st.st_ino, st.st_ctime_ns, st.st_mtime_ns,
                                 st.st_rdev or st.st_size, st.st_mode, st.st_nlink,
                                 st.st_uid, st.st_gid)
            if s_isdir(st.st_mode):
                subdirs.append(de.name)
    return kids, subdirs


def directories(root: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Each directory under ``root`` (``""`` last) with its entries' records, one
    directory at a time (not following symlinks, not crossing into other trees).

    Depth first, each directory opened relative to its parent's descriptor (no path is
    resolved twice, none through a symlink): the descriptors open are those of the
    directories on the current path. A directory gone before it was opened is left out
    of its parent's entries."""
    top = os.open(os.fspath(root), DIR_FLAGS)
    stack: list[tuple[str, int, dict[str, bytes], Iterator[str]]] = []
    try:
        kids, subdirs = read_dir(top)
        stack.append(("", top, kids, iter(subdirs)))
    except BaseException:
        os.close(top)
        raise
    try:
        while stack:
            rel, fd, kids, pending = stack[-1]
            name = next(pending, None)
            if name is None:
                stack.pop()
                os.close(fd)
                yield rel, kids
                continue
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                del kids[name]
                continue
            try:
                ckids, csubdirs = read_dir(child)
            except BaseException:
                os.close(child)
                raise
            stack.append((f"{rel}/{name}" if rel else name, child, ckids, iter(csubdirs)))
    finally:
        for _, fd, _, _ in stack:
            os.close(fd)


def records(root: str | Path) -> Iterator[tuple[str, bytes]]:
    """(relative path, record) of every entry under ``root``, the root's own first
    (``""``), a directory at a time: nothing but one directory is held."""
    yield "", record(os.lstat(root))
    for rel, kids in directories(root):
        prefix = f"{rel}/" if rel else ""
        for name, rec in kids.items():
            yield prefix + name, rec


def listing(root: str | Path) -> Listing:
    """Every entry under ``root`` (see ``directories``), as a ``Listing``."""
    out = Listing()
    out.dirs[ROOT] = {"": record(os.lstat(root))}
    for rel, kids in directories(root):
        out.dirs[rel] = kids
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
