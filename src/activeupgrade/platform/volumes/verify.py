"""Verify: prove two replicas identical, in content and metadata.

Compared for every entry: type, permission bits, owner, group, size, mtime (not atime:
reading changes it), symlink target, device number, xattrs, file contents (byte for
byte, on a thread pool) and the hard-link structure. Only ``ctime`` and inode numbers,
which no copy can reproduce, are not compared.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from activeupgrade.errors import VerifyMismatch
from activeupgrade.platform.volumes.tree import Stats, join, kind, same_content, scan_pair, xattrs

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


def compare(a: str | Path, b: str | Path, *, content: bool = True) -> tuple[list[str], int]:
    """The differences between ``a`` and ``b`` and the number of entries examined."""
    ra, rb = os.fspath(a), os.fspath(b)
    sa, sb = scan_pair(ra, rb)
    diffs: list[str] = []
    for rel in sorted(sa.keys() - sb.keys()):
        diffs.append(f"only in {ra}: {rel or '.'}")
    for rel in sorted(sb.keys() - sa.keys()):
        diffs.append(f"only in {rb}: {rel or '.'}")
    to_compare: list[str] = []
    for rel in sorted(sa.keys() & sb.keys()):
        x, y = sa[rel], sb[rel]
        name = rel or "."
        if stat.S_IFMT(x.st_mode) != stat.S_IFMT(y.st_mode):
            diffs.append(f"{name}: type {kind(x.st_mode)} vs {kind(y.st_mode)}")
            continue
        if stat.S_IMODE(x.st_mode) != stat.S_IMODE(y.st_mode):
            diffs.append(f"{name}: mode {stat.S_IMODE(x.st_mode):o} vs {stat.S_IMODE(y.st_mode):o}")
        if (x.st_uid, x.st_gid) != (y.st_uid, y.st_gid):
            diffs.append(f"{name}: owner {x.st_uid}:{x.st_gid} vs {y.st_uid}:{y.st_gid}")
        if x.st_mtime_ns != y.st_mtime_ns:
            diffs.append(f"{name}: mtime {x.st_mtime_ns} vs {y.st_mtime_ns}")
        pa, pb = join(ra, rel), join(rb, rel)
        if stat.S_ISLNK(x.st_mode):
            ta, tb = os.readlink(pa), os.readlink(pb)
            if ta != tb:
                diffs.append(f"{name}: symlink target {ta!r} vs {tb!r}")
            continue
        if stat.S_ISCHR(x.st_mode) or stat.S_ISBLK(x.st_mode):
            if x.st_rdev != y.st_rdev:
                diffs.append(f"{name}: device {x.st_rdev} vs {y.st_rdev}")
        if xattrs(pa) != xattrs(pb):
            diffs.append(f"{name}: extended attributes differ")
        if stat.S_ISREG(x.st_mode):
            if x.st_size != y.st_size:
                diffs.append(f"{name}: size {x.st_size} vs {y.st_size}")
            elif content and x.st_size:
                to_compare.append(rel)
    if to_compare:
        with ThreadPoolExecutor(max_workers=4) as pool:
            same = pool.map(lambda r: same_content(join(ra, r), join(rb, r)), to_compare,
                            chunksize=32)
            diffs.extend(f"{rel}: content differs"
                         for rel, ok in zip(to_compare, same, strict=True) if not ok)
    la, lb = _links(sa), _links(sb)
    for rel in sorted(la.keys() | lb.keys()):
        if rel in sa and rel in sb and la.get(rel) != lb.get(rel):
            diffs.append(f"{rel}: hard links differ ({la.get(rel)} vs {lb.get(rel)})")
    return diffs, len(sa)


def verify(a: str | Path, b: str | Path, *, name: str = "") -> int:
    """Raise VerifyMismatch listing the differences; return the number of entries checked."""
    diffs, checked = compare(a, b)
    if diffs:
        shown = diffs[:LIMIT]
        more = f" (and {len(diffs) - LIMIT} more)" if len(diffs) > LIMIT else ""
        raise VerifyMismatch(
            f"replicas of {name or a} differ in {len(diffs)} place(s){more}: "
            + "; ".join(shown[:5]),
            details={"differences": shown, "count": len(diffs)},
        )
    return checked
