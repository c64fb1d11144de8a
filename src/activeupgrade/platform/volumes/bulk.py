"""The first copy of a tree into an empty replica: GNU ``cp``, several at a time.

A first sync creates every entry of the tree. Python pays per entry for what ``cp`` does
in C, and copying threads in one interpreter hand its lock over at every system call; so
the top-level entries of the source are split into groups, and each group is copied by
its own ``cp`` process (one running per core), while the resync reads the source tree.

``cp`` is asked to preserve mode (and ACLs), ownership, timestamps, links and extended
attributes explicitly, which makes any failure to preserve one of them an error: a group
whose ``cp`` fails is left to the normal resync, which compares and fixes what is there.
Each copied entry is then taken only if it shows what the scan of the source saw (type,
mode, owner, size, modification time, device); files with several links are always left
to the normal resync, which alone knows their groups across the tree. Nothing goes
through a shell; the ``cp`` processes die with the process that started them. Where the
filesystem shares extents (``storage.Storage.REFLINK``) ``cp`` clones instead of copying;
holes of sparse files stay holes.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from concurrent.futures import Future, as_completed

from activeupgrade import proc
from activeupgrade.platform.volumes.tree import (
    ROOT,
    Listing,
    join,
    listing,
    rec_mode,
    rec_mode_links,
    rec_size,
)
from activeupgrade.platform.volumes.tree import record as record_of

CP = ("cp", "-dR", "--preserve=mode,ownership,timestamps,links,xattr", "--reflink=auto",
      "--sparse=auto")
GROUPS_PER_WORKER = 4
"""Groups per copying process: a group finished is journaled, so a crash redoes at most
the groups in flight."""


def usable() -> bool:
    """Root (only root can give copies their owners) with ``cp`` and ``setpriv`` here."""
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("cp", "setpriv"))


def groups(names: list[str], workers: int) -> list[list[str]]:
    """``names`` in up to ``GROUPS_PER_WORKER * workers`` groups of similar count."""
    count = max(1, min(len(names), GROUPS_PER_WORKER * max(1, workers)))
    return [g for g in (names[i::count] for i in range(count)) if g]


def copy_group(src_root: str, dst_root: str, names: list[str]) -> proc.Completed:
    """Copy the top-level entries ``names`` of ``src_root`` into ``dst_root``."""
    argv = ["setpriv", "--pdeathsig", "KILL", "--", *CP, "-t", dst_root, "--",
            *(os.path.join(src_root, n) for n in names)]
    return proc.run(argv, timeout=None, check=False)


def matches(s: bytes, d: bytes) -> bool:
    """Whether copy ``d`` of source entry ``s`` (their records, ``tree.REC``) can be taken
    as identical without reading its content (the copy was just made by ``cp`` from this
    very entry): the same mode, owner, group and mtime; for other than directories (whose
    entries are checked one by one) the same size and device, and a single link."""
    # (REC: mtime at 16, size or device at 24, mode at 32, links at 34, owner, group at 38)
    if s[32:34] != d[32:34] or s[38:46] != d[38:46] or s[16:24] != d[16:24]:
        return False
    mode, links = rec_mode_links(s)
    if stat.S_ISDIR(mode):
        return True
    if stat.S_ISREG(mode) and links > 1:
        return False
    return s[24:32] == d[24:32]


Pairs = list[tuple[str, dict[str, bytes], dict[str, bytes]]]
"""(directory, its source entries, the copy's entries) to match."""

Matched = list[tuple[str, bytes, bytes]]
"""(name, source record, copy's record) of a directory's entries taken."""

Vouch = Callable[[str, Matched], None]
"""Called with a directory (``""``: the top level) and its entries taken."""


def _below(src: Listing) -> dict[str, list[str]]:
    """Top-level name → the source's directories below it."""
    below: dict[str, list[str]] = {}
    for key in src.dirs:
        if key != ROOT and key:
            below.setdefault(key.partition("/")[0], []).append(key)
    return below


def _match(pairs: Pairs, vouch: Vouch, left: list[str] | None = None) -> tuple[int, int]:
    """``vouch`` for what matches; ``left`` (if given) gets the paths of the rest: source
    entries not matched and entries of the copy the source does not have."""
    files = size = 0
    s_isreg = stat.S_ISREG
    for key, kids, ckids in pairs:
        matched: Matched = []
        prefix = f"{key}/" if key else ""
        for child, s in kids.items():
            d = ckids.get(child)
            if d is not None and matches(s, d):
                matched.append((child, s, d))
                if s_isreg(rec_mode(s)):
                    files += 1
                    size += rec_size(s)
            elif left is not None:
                left.append(prefix + child)
        if left is not None and len(ckids) > len(matched):
            left.extend(prefix + child for child in ckids if child not in kids)
        if matched:
            vouch(key, matched)
    return files, size


def take_copies(running: dict[Future[proc.Completed], list[str]], src: Listing,
                dst_root: str, vouch: Vouch, made: set[str],
                check: Callable[[], None] | None = None) -> tuple[int, int]:
    """As each group's ``cp`` ends (``running``: its future → its top-level names),
    ``vouch`` for every copied entry that ``matches`` what the scan ``src`` of the source
    saw, a directory at a time; top-level names copied go to ``made``. A group whose
    ``cp`` failed is skipped whole (the resync compares what it left). Returns the files
    and bytes taken."""
    below, top = _below(src), src.dirs.get("", {})
    files = size = 0
    for job in as_completed(running):
        if job.result().returncode != 0:
            continue
        for name in running[job]:
            was = top.get(name)
            if was is None:
                continue  # gone from the source since it was listed
            copied = _scan_copy(join(dst_root, name), stat.S_ISDIR(rec_mode(was)))
            pairs: Pairs = [("", {name: was}, {name: rec} if (rec := copied.rec("")) else {})]
            cut = len(name) + 1
            pairs += [(key, src.dirs[key], copied.dirs.get(key[cut:] if key != name else "",
                                                             {}))
                      for key in below.get(name, ())]
            f, b = _match(pairs, vouch)
            files, size = files + f, size + b
            made.add(name)
        if check is not None:
            check()
    return files, size


def finished(running: dict[Future[proc.Completed], list[str]], src: Listing,
             made: set[str], done: Callable[[list[str]], None]) -> None:
    """Wait for every group's ``cp``; the top-level names of those that succeeded (and
    are still in the source) go to ``made``, and to ``done`` as each group ends."""
    top = src.dirs.get("", {})
    for job in as_completed(running):
        if job.result().returncode == 0:
            names = [n for n in running[job] if n in top]
            made.update(names)
            done(names)


def take_listed(names: set[str], src: Listing, copy: Listing, vouch: Vouch,
                left: list[str] | None = None) -> tuple[int, int]:
    """``take_copies`` for the top-level ``names`` copied, from a listing ``copy`` of the
    target (the change tracker's: the copy is not read a second time). ``left`` gets the
    paths below those names that are not vouched for (see ``_match``)."""
    below, top = _below(src), src.dirs.get("", {})
    ctop = copy.dirs.get("", {})
    pairs: Pairs = [("", {n: top[n] for n in names if n in top},
                     {n: ctop[n] for n in names if n in ctop})]
    pairs += [(key, src.dirs[key], copy.dirs.get(key, {}))
              for name in names for key in below.get(name, ())]
    return _match(pairs, vouch, left)


def _scan_copy(path: str, folder: bool) -> Listing:
    """What ``cp`` made at ``path``: a tree, one entry, or nothing."""
    try:
        if folder:
            return listing(path)
        one = Listing()
        one.put("", record_of(os.lstat(path)))
        return one
    except (FileNotFoundError, NotADirectoryError):
        return Listing()
