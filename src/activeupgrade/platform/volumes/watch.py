"""Change tracking of replica trees (inotify), so a resync re-reads only the directories
where something changed since it last looked.

Scanning a tree costs one ``lstat`` per entry; for a mostly unchanged tree that is nearly
all of a resync's time. The first scan of a tree in a process places an inotify watch on
every directory *before* listing it, and keeps the result. Later scans read the queued
events and re-list only the directories named by them (their entries were created,
deleted, renamed, written or had their metadata changed). Files with several hard links
are always re-read (an event names only the directory the change was made through).

The tracking is only trusted while it is complete: an event-queue overflow, a watch limit,
or any error drops it, and the next scan is a full one. It lives in a ``Trackers`` object
that its owner (the daemon's ``state.SyncState``) passes explicitly, never on disk: after
a restart the first scan is full.

Each scan of a tracked tree is a *generation*; the tracker keeps, for its last
``HISTORY`` generations, the names it re-read, so that a caller holding the ``Mark`` of an
earlier snapshot can ask what may have changed since (``changed_since``) and look only
there. Anything the tracker cannot tell exactly (a new tracker, a full re-read, history
gone) answers None: look everywhere.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from activeupgrade.libc import LIBC
from activeupgrade.platform.volumes.tree import (
    DIR_FLAGS,
    REC,
    STATX,
    STATX_BUFFER,
    STATX_FLAGS,
    STATX_MASK,
    UNCHANGEABLE,
    Entry,
    Listing,
    Sigs,
    entry,
    join,
    listing,
    rec_ino,
    rec_mode,
    rec_mode_links,
    split,
)

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
MASK = (IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)
EVENT = struct.Struct("iIII")
KEEP = 16
"""Trees tracked per ``Trackers`` (least recently used beyond this are dropped)."""
HISTORY = 256
"""Generations that changed something whose re-read names a tracker remembers (for
``changed_since``); looks that found nothing new are not counted."""
HISTORY_NAMES = 20_000
"""A generation that re-read more names than this (a whole tree copied in, a full
re-read) is remembered as "anything may have changed": its names would cost more memory
than a full compare of a mark older than it costs time."""

_libc: Final = ctypes.CDLL(None, use_errno=True)
"""The C library (a handle, not state): inotify has no wrapper in the os module."""


@dataclass(frozen=True)
class Mark:
    """Which tracker, and which of its generations, a snapshot was."""

    tracker: int
    gen: int


@dataclass
class Snapshot:
    """A tree's entries now, the names with several hard links, and its mark (None when
    the tree is not tracked)."""

    stats: Listing
    sigs: Sigs
    multi: set[str]
    mark: Mark | None
    unchangeable: dict[str, int] | None = None
    """The immutable and append-only entries (``tree.UNCHANGEABLE`` attributes by path)
    as each entry was last read: ``chattr`` makes no inotify event, so only a new
    tracker's first scan has read them all now. None: not looked at (a tree read in full
    without tracking)."""


class Untrackable(Exception):
    """Tracking cannot continue (overflow, watch limit): fall back to full scans."""


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def _within(rel: str, own: frozenset[str]) -> bool:
    """Whether ``rel`` is one of the directories ``own`` or below one."""
    while rel:
        if rel in own:
            return True
        rel = _parent(rel)
    return False


class Tracker:
    """One tree: its last known entries (a compact ``tree.Listing``) and the inotify
    watches that keep them true."""

    def __init__(self, root: str, serial: int) -> None:
        self.root = root
        fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise Untrackable(os.strerror(ctypes.get_errno()))
        self.fd = fd
        self.tree = Listing()
        """The entries: a directory's names are those of its ``tree.dirs`` key."""
        self.wd_rel: dict[int, str] = {}
        self.rel_wd: dict[str, int] = {}
        self.multi: set[str] = set()
        self.unchangeable: dict[str, int] = {}
        """Path → its ``tree.UNCHANGEABLE`` attributes, for the entries that have any."""
        self.links: dict[int, int] = {}
        """Inode of a multi-link entry → the link count its other names were last read
        at: only a change of it makes every name of the tree be looked at for that inode."""
        self.lock = threading.Lock()
        self.serial = serial
        self.gen = 0
        self.history: deque[tuple[int, set[str] | None]] = deque(maxlen=HISTORY)
        self.complete_from = 1
        """The first generation ``history`` still covers."""
        self._touched: set[str] | None = None
        """Names read again since the last look (None: more than ``HISTORY_NAMES``, as
        good as everything; so is the first scan)."""
        self._put("", entry(root))
        self._scan_dir("")
        self._touched = set()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- building ---------------------------------------------------------------------
    def _watch(self, rel: str) -> None:
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(join(self.root, rel)), MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):
                raise FileNotFoundError(err, os.strerror(err))
            raise Untrackable(f"inotify watch on {rel or '.'}: {os.strerror(err)}")
        self.wd_rel[wd] = rel
        self.rel_wd[rel] = wd

    def _touch(self, rels: Iterable[str]) -> None:
        touched = self._touched
        if touched is not None:
            touched.update(rels)
            if len(touched) > HISTORY_NAMES:
                self._touched = None  # so many: the names are not worth keeping

    def _put(self, rel: str, e: Entry) -> None:
        self._touch((rel,))
        self.tree.put(rel, e.rec)
        mode, links = rec_mode_links(e.rec)
        if links > 1 and not stat.S_ISDIR(mode):
            self.multi.add(rel)
        else:
            self.multi.discard(rel)
        if e.attrs:
            self.unchangeable[rel] = e.attrs
        else:
            self.unchangeable.pop(rel, None)

    def _scan_dir(self, top: str) -> None:
        """(Re)list ``top`` and everything below it, watching each directory first.

        The hot loop of a first scan: entries are stat'ed relative to their directory's
        descriptor (one name resolved per ``statx``, which gives the immutable and
        append-only attributes too) and recorded inline. Names and directories are kept
        as interned strings: one object per name for both replicas' trackers and the
        manifest (``manifest.Entries``), not one per tree."""
        stack = [top]
        dirs, multi, flagged = self.tree.dirs, self.multi, self.unchangeable
        s_isdir, intern, fsencode = stat.S_ISDIR, sys.intern, os.fsencode
        statx, buf = LIBC.statx, ctypes.create_string_buffer(STATX_BUFFER)
        # ``tree.from_statx`` inline: a call per entry costs 10-30 % of a first scan
        fields, pack, makedev, ns = STATX.unpack_from, REC.pack, os.makedev, 1_000_000_000
        while stack:
            rel = stack.pop()
            prefix = f"{rel}/" if rel else ""
            for name, rec in dirs.pop(rel, {}).items():
                self._forget(prefix + name, rec)  # what was known is stale (and not multi)
            try:
                self._watch(rel)  # before listing: no change can fall in between
                kids: dict[str, bytes] = {}
                fd = os.open(join(self.root, rel), DIR_FLAGS)
                try:
                    with os.scandir(fd) as it:
                        for de in it:
                            if statx(fd, fsencode(de.name), STATX_FLAGS, STATX_MASK, buf):
                                err = ctypes.get_errno()
                                if err == errno.ENOENT:
                                    continue  # gone since it was listed
                                raise OSError(err, os.strerror(err),
                                              join(self.root, prefix + de.name))
                            (attrs, links, uid, gid, mode, ino, size, c_s, c_ns, m_s, m_ns,
                             major, minor) = fields(buf)
                            name = intern(de.name)
                            kids[name] = pack(ino, c_s * ns + c_ns, m_s * ns + m_ns,
                                              makedev(major, minor) if major or minor
                                              else size, mode, links, uid, gid)
                            if attrs & UNCHANGEABLE:
                                flagged[prefix + name] = attrs & UNCHANGEABLE
                            if links > 1 and not s_isdir(mode):
                                multi.add(prefix + name)
                            elif s_isdir(mode):
                                stack.append(intern(prefix + name))
                finally:
                    os.close(fd)
                dirs[rel] = kids
                self._touch(prefix + n for n in kids)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise
                self._drop(rel)  # gone, or replaced by something that is not a directory

    def _drop(self, rel: str) -> None:
        """Forget ``rel`` and everything below it."""
        head, name = split(rel)
        kids = self.tree.dirs.get(head)
        rec = None if kids is None else kids.pop(name, None)
        self._forget(rel, rec)

    def _forget(self, rel: str, rec: bytes | None) -> None:
        """``rel`` (its record ``rec``, already taken out) and what was below it."""
        self._touch((rel,))
        self.multi.discard(rel)
        self.unchangeable.pop(rel, None)
        if rec is None or not stat.S_ISDIR(rec_mode(rec)):
            return
        prefix = f"{rel}/" if rel else ""
        for name, child in self.tree.dirs.pop(rel, {}).items():
            self._forget(prefix + name, child)
        wd = self.rel_wd.pop(rel, None)
        if wd is not None and self.wd_rel.get(wd) == rel:
            del self.wd_rel[wd]
            _libc.inotify_rm_watch(self.fd, wd)

    # -- keeping up -------------------------------------------------------------------
    def _events(self, own: frozenset[str]) -> tuple[dict[str, set[str] | None], bool]:
        """Directories to re-read (with the names their events gave, or None: all of it),
        and whether something may have happened that the events cannot tell (then
        everything is read again)."""
        dirty: dict[str, set[str] | None] = {}
        selfs: set[str] = set()
        created: set[str] = set()
        moved: dict[int, tuple[str, bool]] = {}
        transient = False
        while True:
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            off = 0
            while off < len(data):
                wd, mask, cookie, length = EVENT.unpack_from(data, off)
                off += EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    raise Untrackable("inotify event queue overflowed")
                rel = self.wd_rel.get(wd)
                if rel is None:
                    continue
                if mask & IN_IGNORED:
                    if self.rel_wd.get(rel) == wd:
                        del self.rel_wd[rel]
                    del self.wd_rel[wd]
                if not length:  # about the directory itself
                    if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                        dirty[rel] = None
                        if rel:
                            dirty[_parent(rel)] = None
                    else:  # its own metadata: only its entry is read again
                        selfs.add(rel)
                    continue
                name = data[off - length:off].rstrip(b"\0").decode(errors="surrogateescape")
                child = f"{rel}/{name}" if rel else name
                names = dirty.setdefault(rel, set())
                if names is not None:
                    names.add(name)
                if mask & IN_CREATE and mask & IN_ISDIR and not _within(child, own):
                    # what happened inside before it was watched is unknown (a hard link
                    # made and removed there would have changed entries elsewhere)
                    transient = True
                elif mask & IN_CREATE:
                    created.add(child)
                elif mask & IN_MOVED_TO:
                    src = moved.pop(cookie, None)
                    if src is None or src[1]:
                        created.add(child)
                elif mask & IN_MOVED_FROM:
                    moved[cookie] = (child, child in created)
                    created.discard(child)
                elif mask & IN_DELETE and child in created:
                    transient = True
                    created.discard(child)
        # moved out of the tree after being created here
        transient = transient or any(was_created for _, was_created in moved.values())
        for rel in selfs:
            if rel not in dirty:
                dirty[rel] = set()  # no names: only the directory's own entry
        return dirty, transient

    def _refresh_names(self, rel: str, names: set[str]) -> None:
        """Re-read directory ``rel``'s own entry and the children events named."""
        if rel and rel not in self.tree:
            return
        try:
            self._put(rel, entry(join(self.root, rel)))
        except FileNotFoundError:
            self._drop(rel)
            return
        self.tree.dirs.setdefault(rel, {})
        for name in names:
            child = f"{rel}/{name}" if rel else name
            try:
                cst = entry(join(self.root, child))
            except FileNotFoundError:
                self._drop(child)
                continue
            self._take(child, cst)

    def _take(self, child: str, cst: Entry) -> None:
        old = self.tree.rec(child)
        folder = stat.S_ISDIR(rec_mode(cst.rec))
        if old is not None and stat.S_ISDIR(rec_mode(old)) and (
            not folder or rec_ino(old) != rec_ino(cst.rec)
        ):
            self._drop(child)  # replaced: a different directory or not one at all
        self._put(child, cst)
        if folder and child not in self.rel_wd:
            self._scan_dir(child)

    def _refresh(self, rel: str) -> None:
        if rel and rel not in self.tree:
            return  # below a directory dropped earlier in this pass
        path = join(self.root, rel)
        try:
            st = entry(path)
        except FileNotFoundError:
            self._drop(rel)
            return
        old = self.tree.rec(rel)
        folder = stat.S_ISDIR(rec_mode(st.rec))
        if not folder or (old is not None and rec_ino(old) != rec_ino(st.rec)):
            self._drop(rel)  # replaced by something else: forget what was below
            self._put(rel, st)
            if not folder:
                return
        self._put(rel, st)
        if rel not in self.rel_wd:
            self._scan_dir(rel)
            return
        try:
            names = set(os.listdir(path))
        except FileNotFoundError:
            self._drop(rel)
            return
        for gone in list(self.tree.dirs.setdefault(rel, {}).keys() - names):
            self._drop(f"{rel}/{gone}" if rel else gone)
        for name in names:
            child = f"{rel}/{name}" if rel else name
            try:
                cst = entry(join(self.root, child))
            except FileNotFoundError:
                continue
            self._take(child, cst)

    def current(self, own: frozenset[str] = frozenset()) -> Listing:
        """The tree as it is now: the tracker's own maps, not copies (copying them would
        make every look O(entries)); read-only, and valid until the next look at this tree.
        ``own``: directories the caller creates and fills itself, or has ``cp`` fill
        (nothing unseen can happen in them or below them)."""
        dirty, transient = self._events(own)
        if transient:
            # A name created and gone again between two looks: had it been a hard link to
            # an entry elsewhere, that entry may have changed unseen. Read everything.
            self._scan_dir("")
        for rel in sorted(dirty, key=lambda r: (r.count("/") + bool(r), r)):
            names = dirty[rel]
            if names is None or rel not in self.rel_wd:
                self._refresh(rel)
            else:
                self._refresh_names(rel, names)
        for rel in list(self.multi):
            try:
                self._put(rel, entry(join(self.root, rel)))
            except FileNotFoundError:
                pass
        # A link made in one directory changes the link count (and ctime) of entries in
        # others that no event names: where an inode's count changed since its names were
        # last read, every entry of that inode is read again (a walk of the map, rare).
        counts: dict[int, int] = {}
        for rel in self.multi:
            rec = self.tree.rec(rel)
            if rec is not None:
                counts[rec_ino(rec)] = rec_mode_links(rec)[1]
        moved = {ino for ino, n in counts.items() if self.links.get(ino) != n}
        if moved:
            for rel, rec in list(self.tree.recs()):
                if rec_ino(rec) in moved and rel not in self.multi:
                    try:
                        self._put(rel, entry(join(self.root, rel)))
                    except FileNotFoundError:
                        pass
        self.links = counts
        self.gen += 1
        touched, self._touched = self._touched, set()
        if transient or touched is None or touched:
            if len(self.history) == self.history.maxlen:
                self.complete_from = self.history[0][0] + 1
            self.history.append((self.gen, None if transient else touched))
        return self.tree

    def mark(self) -> Mark:
        return Mark(self.serial, self.gen)

    def changed_since(self, mark: Mark) -> set[str] | None:
        """Every name that may differ from what snapshot ``mark`` showed (None: unknown,
        assume everything)."""
        if mark.tracker != self.serial or mark.gen > self.gen:
            return None
        if mark.gen == self.gen:
            return set()
        out: set[str] = set()
        first = mark.gen + 1
        if first < self.complete_from:
            return None  # older than the history kept
        for gen, names in self.history:
            if gen < first:
                continue
            if names is None:
                return None
            out |= names
        return out


def _multi(tree: Listing) -> set[str]:
    out: set[str] = set()
    for rel, rec in tree.recs():
        mode, links = rec_mode_links(rec)
        if links > 1 and not stat.S_ISDIR(mode):
            out.add(rel)
    return out


def _scan_plain(root: str) -> Snapshot:
    tree = listing(root)
    return Snapshot(tree, Sigs(tree), _multi(tree), None)


def take_plain(root: str | os.PathLike[str]) -> Snapshot:
    """Every entry of ``root`` now, read in full (no tracking)."""
    return _scan_plain(os.path.realpath(root))


class Trackers:
    """The change trackers of one owner (the daemon), by tree; at most ``keep`` trees,
    the least recently used dropped beyond that."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._trees: OrderedDict[str, Tracker] = OrderedDict()
        self._serial = 0

    def roots(self) -> list[str]:
        with self._lock:
            return list(self._trees)

    def take(self, root: str | os.PathLike[str], track: bool = True,
             own: frozenset[str] = frozenset()) -> Snapshot:
        """Every entry of ``root`` now; tracked trees re-read only what changed.

        A tracked tree's maps are the tracker's own (no copy: a look stays O(changes)):
        read-only, valid until the next look at ``root``; a caller holds the tree
        (``SyncState.holding``) while it uses them.

        ``track`` False (a filesystem with coarse timestamps: an event may name an entry
        whose signature did not change) reads everything and drops any tracking of
        ``root``."""
        key = os.path.realpath(root)
        if not track:
            self.forget(key)
            return _scan_plain(key)
        try:
            with self._lock:
                tracker = self._trees.pop(key, None)
                if tracker is None:
                    # built under the lock: two callers never build the same tree twice
                    self._serial += 1
                    tracker = Tracker(key, self._serial)
                    self._trees[key] = tracker
                    while len(self._trees) > self.keep:
                        self._trees.popitem(last=False)[1].close()
                    return Snapshot(tracker.tree, Sigs(tracker.tree), set(tracker.multi),
                                    tracker.mark(), dict(tracker.unchangeable))
                self._trees[key] = tracker
            with tracker.lock:
                tree = tracker.current(own)
                return Snapshot(tree, Sigs(tree), set(tracker.multi), tracker.mark(),
                                dict(tracker.unchangeable))
        except Untrackable:
            self.forget(key)
            return _scan_plain(key)

    def snapshot(self, root: str | os.PathLike[str], track: bool = True,
                 own: frozenset[str] = frozenset()) -> tuple[Listing, Sigs]:
        """``take`` without the mark: the entries and their signatures."""
        snap = self.take(root, track, own)
        return snap.stats, snap.sigs

    def changed_since(self, root: str | os.PathLike[str], mark: Mark | None) -> set[str] | None:
        """The names of ``root`` that may have changed since the snapshot ``mark`` (None:
        unknown). Call it right after a new snapshot of ``root``: changes the tracker has
        not read yet are not included."""
        if mark is None:
            return None
        with self._lock:
            tracker = self._trees.get(os.path.realpath(root))
        if tracker is None:
            return None
        with tracker.lock:
            return tracker.changed_since(mark)

    def forget(self, root: str | os.PathLike[str]) -> None:
        """Stop tracking ``root`` (its next scan is a full one)."""
        with self._lock:
            tracker = self._trees.pop(os.path.realpath(root), None)
        if tracker is not None:
            tracker.close()

    def close(self) -> None:
        """Stop tracking every tree."""
        with self._lock:
            trackers = list(self._trees.values())
            self._trees.clear()
        for t in trackers:
            t.close()


def forget(root: str | os.PathLike[str], trackers: Trackers | None = None) -> None:
    """Stop tracking ``root`` in ``trackers`` (nothing to do without them: tracking lives
    only in its owner's ``Trackers``)."""
    if trackers is not None:
        trackers.forget(root)
