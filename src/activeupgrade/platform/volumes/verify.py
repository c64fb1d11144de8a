"""Verify: prove two replicas identical, in content and metadata.

Compared for every entry: type, permission bits, owner, group, size, mtime (not atime:
reading changes it), symlink target, device number, xattrs, file contents (byte for
byte, on a thread pool) and the hard-link structure. Only ``ctime`` and inode numbers,
which no copy can reproduce, are not compared.

A *quick* verify (``trusted``: the resync manifest's entries) reads the contents only of
files the manifest does not vouch for: a file whose inode, size, mtime and inode-change
time (ctime) on both sides are those the manifest recorded when a resync made the two
identical has not been written since on either side (any write moves its ctime, which
user space cannot set back). Everything else is compared as in a full verify;
``au volume verify --full`` reads every byte.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from activeupgrade.errors import VerifyMismatch
from activeupgrade.platform.volumes.manifest import Entries
from activeupgrade.platform.volumes.tree import (
    DIR_FLAGS,
    StatLike,
    info,
    join,
    kind,
    read_dir,
    same_content,
    sig,
    xattrs,
)

Trusted = Callable[[str, StatLike, StatLike], bool]
"""Whether the contents of entry ``rel`` (lstat on each side) are known identical."""


def trusted_by(known: Entries, first_is_a: bool = True) -> Trusted:
    """Contents vouched for by a manifest's entries (oriented A, B): both signatures now
    are the ones recorded. ``first_is_a``: the first tree compared is replica A."""
    def trusted(rel: str, x: StatLike, y: StatLike) -> bool:
        pair = known.get(rel)
        if pair is None:
            return False
        return pair == (sig(x) + sig(y) if first_is_a else sig(y) + sig(x))

    return trusted

LIMIT = 200
"""Differences listed in full; beyond this only counted."""
READ_BATCH = 64
"""Files whose contents are compared per pool task."""


def _links(linked: list[tuple[str, int]]) -> dict[str, str]:
    """Each hard-linked path (``linked``: path, inode, in path order) → the first path of
    its inode (the structure to compare)."""
    first: dict[int, str] = {}
    return {rel: first.setdefault(ino, rel) for rel, ino in linked}


def differences(a: str | Path, b: str | Path, *, content: bool = True) -> list[str]:
    """Every difference between trees ``a`` and ``b``, as readable lines."""
    return compare(a, b, content=content)[0]


def compare(a: str | Path, b: str | Path, *, content: bool = True,
            trusted: Trusted | None = None) -> tuple[list[str], int]:
    """The differences between ``a`` and ``b`` and the number of entries examined
    (``trusted``: files whose contents need not be read)."""
    found, checked = _compare(a, b, content=content, trusted=trusted)
    return [msg for _, msg in found], checked


def _compare(a: str | Path, b: str | Path, *, content: bool = True,
             trusted: Trusted | None = None) -> tuple[list[tuple[str, str]], int]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        walk = _Walk(os.fspath(a), os.fspath(b), content, trusted, pool)
        walk.run()
        diffs, checked = walk.result()
    diffs.sort(key=lambda d: d[0])
    return diffs, checked


def _listing(root: str, rel: str) -> dict[str, bytes]:
    """The entries of directory ``rel`` of ``root``: name → record of its lstat (nothing
    when it cannot be listed as a directory any more). Records, not stat results: a
    directory of tens of thousands of entries costs a few MB, not tens."""
    try:
        fd = os.open(join(root, rel), DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    try:
        return read_dir(fd)[0]
    finally:
        os.close(fd)


class _Walk:
    """Both trees compared a directory at a time: what is held is one directory's
    listings per side (and the few multi-link entries), never a whole tree."""

    def __init__(self, ra: str, rb: str, content: bool, trusted: Trusted | None,
                 pool: ThreadPoolExecutor) -> None:
        self.ra, self.rb, self.content, self.trusted, self.pool = ra, rb, content, trusted, pool
        self.diffs: list[tuple[str, str]] = []
        self.checked = 0
        self.links: tuple[list[tuple[str, int]], list[tuple[str, int]]] = ([], [])
        self.both: set[str] = set()
        self.reads: list[Future[list[str]]] = []
        self.batch: list[str] = []

    def run(self) -> None:
        # Each entry is compared as soon as both directories are listed; what waits on the
        # stack is the directories still to list (their paths), not every entry's stats.
        stack: list[tuple[str, bool, bool]] = []
        x: StatLike = os.lstat(self.ra)
        y: StatLike = os.lstat(self.rb)
        if self._visit("", x, y):
            stack.append(("", stat.S_ISDIR(x.st_mode), stat.S_ISDIR(y.st_mode)))
        while stack:
            rel, dir_x, dir_y = stack.pop()
            la = _listing(self.ra, rel) if dir_x else {}
            lb = _listing(self.rb, rel) if dir_y else {}
            prefix = f"{rel}/" if rel else ""
            for name in la.keys() - lb.keys():
                self._only(0, prefix + name, info(la[name]))
            for name in lb.keys() - la.keys():
                self._only(1, prefix + name, info(lb[name]))
            for name in la.keys() & lb.keys():
                x, y = info(la[name]), info(lb[name])
                if self._visit(prefix + name, x, y):
                    stack.append((prefix + name, stat.S_ISDIR(x.st_mode),
                                  stat.S_ISDIR(y.st_mode)))
        self._flush()

    def _visit(self, rel: str, x: StatLike, y: StatLike) -> bool:
        """Compare entry ``rel`` (``x``, ``y``: its stats on each side); whether it is a
        directory on either side (to be listed)."""
        self.checked += 1
        self._note(rel, x, 0)
        self._note(rel, y, 1)
        if self._linked(x) or self._linked(y):
            self.both.add(rel)  # (the link structure is compared where both have it)
        self._entry(rel, x, y)
        return stat.S_ISDIR(x.st_mode) or stat.S_ISDIR(y.st_mode)

    @staticmethod
    def _linked(st: StatLike) -> bool:
        return stat.S_ISREG(st.st_mode) and st.st_nlink > 1

    def _note(self, rel: str, st: StatLike, side: int) -> None:
        if self._linked(st):
            self.links[side].append((rel, st.st_ino))

    def _only(self, side: int, rel: str, st: StatLike) -> None:
        """``rel`` and everything below it exist on one side only."""
        root = self.ra if side == 0 else self.rb
        stack = [(rel, st)]
        while stack:
            r, s = stack.pop()
            self.checked += side == 0
            self._note(r, s, side)
            self.diffs.append((r, f"only in {root}: {r or '.'}"))
            if stat.S_ISDIR(s.st_mode):
                stack.extend((f"{r}/{n}", info(cs)) for n, cs in _listing(root, r).items())

    def _entry(self, rel: str, x: StatLike, y: StatLike) -> None:
        diffs, name = self.diffs, rel or "."
        if stat.S_IFMT(x.st_mode) != stat.S_IFMT(y.st_mode):
            diffs.append((rel, f"{name}: type {kind(x.st_mode)} vs {kind(y.st_mode)}"))
            return
        if stat.S_IMODE(x.st_mode) != stat.S_IMODE(y.st_mode):
            mx, my = stat.S_IMODE(x.st_mode), stat.S_IMODE(y.st_mode)
            diffs.append((rel, f"{name}: mode {mx:o} vs {my:o}"))
        if (x.st_uid, x.st_gid) != (y.st_uid, y.st_gid):
            diffs.append((rel, f"{name}: owner {x.st_uid}:{x.st_gid} vs {y.st_uid}:{y.st_gid}"))
        if x.st_mtime_ns != y.st_mtime_ns:
            diffs.append((rel, f"{name}: mtime {x.st_mtime_ns} vs {y.st_mtime_ns}"))
        pa, pb = join(self.ra, rel), join(self.rb, rel)
        if stat.S_ISLNK(x.st_mode):
            ta, tb = os.readlink(pa), os.readlink(pb)
            if ta != tb:
                diffs.append((rel, f"{name}: symlink target {ta!r} vs {tb!r}"))
            return
        if stat.S_ISCHR(x.st_mode) or stat.S_ISBLK(x.st_mode):
            if x.st_rdev != y.st_rdev:
                diffs.append((rel, f"{name}: device {x.st_rdev} vs {y.st_rdev}"))
        if xattrs(pa) != xattrs(pb):
            diffs.append((rel, f"{name}: extended attributes differ"))
        if stat.S_ISREG(x.st_mode):
            if x.st_size != y.st_size:
                diffs.append((rel, f"{name}: size {x.st_size} vs {y.st_size}"))
            elif (self.content and x.st_size
                  and not (self.trusted is not None and self.trusted(rel, x, y))):
                self.batch.append(rel)
                if len(self.batch) >= READ_BATCH:
                    self._flush()

    def _flush(self) -> None:
        if self.batch:
            self.reads.append(self.pool.submit(self._read, self.batch))
            self.batch = []

    def _read(self, rels: list[str]) -> list[str]:
        """Of ``rels``, those whose contents differ."""
        return [r for r in rels if not same_content(join(self.ra, r), join(self.rb, r))]

    def result(self) -> tuple[list[tuple[str, str]], int]:
        for fut in self.reads:
            self.diffs.extend((rel, f"{rel}: content differs") for rel in fut.result())
        la, lb = (_links(sorted(side)) for side in self.links)
        for rel in sorted(la.keys() | lb.keys()):
            if rel in self.both and la.get(rel) != lb.get(rel):
                self.diffs.append(
                    (rel, f"{rel}: hard links differ ({la.get(rel)} vs {lb.get(rel)})"))
        return self.diffs, self.checked


def _raise(diffs: list[str], name: str) -> None:
    shown = diffs[:LIMIT]
    more = f" (and {len(diffs) - LIMIT} more)" if len(diffs) > LIMIT else ""
    raise VerifyMismatch(
        f"replicas of {name} differ in {len(diffs)} place(s){more}: " + "; ".join(shown[:5]),
        details={"differences": shown, "count": len(diffs)},
    )


def verify(a: str | Path, b: str | Path, *, name: str = "",
           trusted: Trusted | None = None) -> int:
    """Raise VerifyMismatch listing the differences; return the number of entries checked.
    ``trusted``: files whose contents need not be read (a quick verify)."""
    diffs, checked = compare(a, b, trusted=trusted)
    if diffs:
        _raise(diffs, name or os.fspath(a))
    return checked


def verify_settled(live: str | Path, standby: str | Path, since_ns: int, *, name: str = "",
                   trusted: Trusted | None = None) -> tuple[int, list[str]]:
    """Verify a standby resynchronised from ``live`` while ``live`` stayed in use.

    Differences in entries the live side changed at or after ``since_ns`` (the start of
    that resync) are not failures: they are the lag the next resync takes up, and are
    returned. Any other difference raises VerifyMismatch."""
    found, checked = _compare(live, standby, trusted=trusted)
    real: list[str] = []
    lagging: list[str] = []
    for rel, msg in found:
        (lagging if _changed_since(os.fspath(live), rel, since_ns) else real).append(msg)
    if real:
        _raise(real, name or os.fspath(live))
    return checked, lagging


def _changed_since(root: str, rel: str, since_ns: int) -> bool:
    """``rel`` (or, when it is gone, its directory) changed on the live side since then."""
    while True:
        try:
            return os.lstat(join(root, rel)).st_ctime_ns >= since_ns
        except FileNotFoundError:
            if not rel:
                return False
            rel = os.path.dirname(rel)
