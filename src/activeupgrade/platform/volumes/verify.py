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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from activeupgrade.errors import VerifyMismatch
from activeupgrade.platform.volumes.manifest import Entries
from activeupgrade.platform.volumes.tree import (
    Stats,
    join,
    kind,
    same_content,
    scan_pair,
    sig,
    xattrs,
)

Trusted = Callable[[str, os.stat_result, os.stat_result], bool]
"""Whether the contents of entry ``rel`` (lstat on each side) are known identical."""


def trusted_by(known: Entries, first_is_a: bool = True) -> Trusted:
    """Contents vouched for by a manifest's entries (oriented A, B): both signatures now
    are the ones recorded. ``first_is_a``: the first tree compared is replica A."""
    def trusted(rel: str, x: os.stat_result, y: os.stat_result) -> bool:
        pair = known.get(rel)
        if pair is None:
            return False
        return pair == ((sig(x), sig(y)) if first_is_a else (sig(y), sig(x)))

    return trusted

LIMIT = 200
"""Differences listed in full; beyond this only counted."""


def _links(stats: Stats) -> dict[str, str]:
    """Each hard-linked path → the first path of its inode (the structure to compare)."""
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    for rel in sorted(stats):
        st = stats[rel]
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            out[rel] = first.setdefault(st.st_ino, rel)
    return out


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
    ra, rb = os.fspath(a), os.fspath(b)
    sa, sb = scan_pair(ra, rb)
    diffs: list[tuple[str, str]] = []
    for rel in sorted(sa.keys() - sb.keys()):
        diffs.append((rel, f"only in {ra}: {rel or '.'}"))
    for rel in sorted(sb.keys() - sa.keys()):
        diffs.append((rel, f"only in {rb}: {rel or '.'}"))
    to_compare: list[str] = []
    for rel in sorted(sa.keys() & sb.keys()):
        x, y = sa[rel], sb[rel]
        name = rel or "."
        if stat.S_IFMT(x.st_mode) != stat.S_IFMT(y.st_mode):
            diffs.append((rel, f"{name}: type {kind(x.st_mode)} vs {kind(y.st_mode)}"))
            continue
        if stat.S_IMODE(x.st_mode) != stat.S_IMODE(y.st_mode):
            mx, my = stat.S_IMODE(x.st_mode), stat.S_IMODE(y.st_mode)
            diffs.append((rel, f"{name}: mode {mx:o} vs {my:o}"))
        if (x.st_uid, x.st_gid) != (y.st_uid, y.st_gid):
            diffs.append((rel, f"{name}: owner {x.st_uid}:{x.st_gid} vs {y.st_uid}:{y.st_gid}"))
        if x.st_mtime_ns != y.st_mtime_ns:
            diffs.append((rel, f"{name}: mtime {x.st_mtime_ns} vs {y.st_mtime_ns}"))
        pa, pb = join(ra, rel), join(rb, rel)
        if stat.S_ISLNK(x.st_mode):
            ta, tb = os.readlink(pa), os.readlink(pb)
            if ta != tb:
                diffs.append((rel, f"{name}: symlink target {ta!r} vs {tb!r}"))
            continue
        if stat.S_ISCHR(x.st_mode) or stat.S_ISBLK(x.st_mode):
            if x.st_rdev != y.st_rdev:
                diffs.append((rel, f"{name}: device {x.st_rdev} vs {y.st_rdev}"))
        if xattrs(pa) != xattrs(pb):
            diffs.append((rel, f"{name}: extended attributes differ"))
        if stat.S_ISREG(x.st_mode):
            if x.st_size != y.st_size:
                diffs.append((rel, f"{name}: size {x.st_size} vs {y.st_size}"))
            elif content and x.st_size and not (trusted is not None and trusted(rel, x, y)):
                to_compare.append(rel)
    if to_compare:
        with ThreadPoolExecutor(max_workers=4) as pool:
            same = pool.map(lambda r: same_content(join(ra, r), join(rb, r)), to_compare,
                            chunksize=32)
            diffs.extend((rel, f"{rel}: content differs")
                         for rel, ok in zip(to_compare, same, strict=True) if not ok)
    la, lb = _links(sa), _links(sb)
    for rel in sorted(la.keys() | lb.keys()):
        if rel in sa and rel in sb and la.get(rel) != lb.get(rel):
            diffs.append((rel, f"{rel}: hard links differ ({la.get(rel)} vs {lb.get(rel)})"))
    return diffs, len(sa)


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
