"""Resync: make one replica identical to another, copying only what differs.

1. Both trees are looked at (``watch.Trackers.take`` of the caller's ``state.SyncState``:
   change tracking re-reads only what changed since the last look; ``lstat`` only). A
   first sync into an empty target has its top-level entries copied by ``cp`` processes
   meanwhile (``bulk``).
2. An entry whose signatures on both sides equal the manifest's pair is identical: no
   further syscall. After an earlier resync of the same pair, only the names changed
   since on either side are compared (``state.Last``). The others are *candidates*; a
   hard-link group is a candidate as a whole.
3. Extra entries on the target are deleted; missing directories are created; candidate
   files are copied (reflink/``copy_file_range``; see copy.py for where) or, when size and
   mtime agree, compared and only their metadata fixed; symlinks and special files are
   recreated; hard links are re-linked; directory metadata is set last (creating entries
   changes a directory's mtime).
4. Finished entries go to the journal as they complete, so a crash loses nothing; the
   journal is folded into the manifest once it has grown (``Manifest.settle``). The
   entries a first copy's ``cp`` made are saved as the manifest at once instead
   (``Journal.rebase``).

Copies run on a thread pool (the kernel does the copying; the GIL is released).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from activeupgrade import proc
from activeupgrade.errors import VolumeError
from activeupgrade.platform.volumes import bulk, reserve, snapshot
from activeupgrade.platform.volumes.copy import CopyFlags, apply_meta, copy_file, copy_special
from activeupgrade.platform.volumes.manifest import Entries, Journal, Manifest
from activeupgrade.platform.volumes.state import Last, SyncState
from activeupgrade.platform.volumes.storage import Storage, detect
from activeupgrade.platform.volumes.tree import (
    RACY_NS,
    ROOT,
    SIG_LEN,
    Info,
    Listing,
    StatLike,
    join,
    rec_ctime,
    rec_ino,
    rec_mode,
    rec_mode_links,
    rec_size,
    same_content,
)
from activeupgrade.platform.volumes.tree import record as record_of
from activeupgrade.units import human_bytes

_RESUMES = "what was copied is kept: the next resync (Retry) goes on from there."
_HINTS = {
    errno.ENOSPC: "Free space on the filesystem holding the replicas (df -h); " + _RESUMES,
    errno.EDQUOT: "Raise the disk quota or free space on the replicas' filesystem; "
                  + _RESUMES,
    errno.EROFS: "The replicas' filesystem is read-only: remount it read-write; " + _RESUMES,
    errno.EIO: "The disk reported an I/O error: check the kernel log (dmesg) and the "
               "disk before going on; " + _RESUMES,
    errno.EPERM: "An entry there is probably immutable or append-only (`lsattr -d` "
                 "shows an i or an a; chattr makes no change event, so the tool learns "
                 "of it only here): clear the flag (`chattr -i`/`chattr -a`); "
                 + _RESUMES,
}
"""Errors of the machine rather than of the tool, with what the operator can do."""

WORKERS = min(8, max(2, os.cpu_count() or 2))
"""Copy threads: one per core. The kernel does the copying with the GIL released, but each
of the ten-odd system calls per file hands the GIL over; more threads than cores spend
more time handing it over than copying (measured: 4 threads on 2 cores used 20 % more
CPU than 2 for the same full sync)."""
CHUNK = 48
"""Entries per pool task: large enough to amortise the task overhead."""


@dataclass
class Progress:
    """Where a resync is; handed to the progress callback."""

    bytes_total: int = 0
    bytes_done: int = 0
    files_total: int = 0
    files_done: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def percent(self) -> float:
        if self.bytes_total + self.files_total == 0:
            return 100.0
        # Files weigh like 64 KiB each: small-file trees are dominated by per-file cost.
        done = self.bytes_done + self.files_done * 65536
        total = self.bytes_total + self.files_total * 65536
        return min(100.0, 100.0 * done / total)

    @property
    def eta(self) -> float:
        elapsed = time.monotonic() - self.started
        pct = self.percent
        if pct <= 0.0:
            return 0.0
        return max(0.0, elapsed * (100.0 - pct) / pct)

    def text(self) -> str:
        return (f"{human_bytes(self.bytes_done)} of {human_bytes(self.bytes_total)}, "
                f"{self.files_done}/{self.files_total} entries, ETA {self.eta:.0f}s")

    def counts(self) -> dict[str, int]:
        """The counters as ``StepContext.progress`` takes them."""
        return {"bytes_done": self.bytes_done, "bytes_total": self.bytes_total,
                "files_done": self.files_done, "files_total": self.files_total}


ProgressCb = Callable[[Progress], None]
Screen = Callable[[dict[str, int] | None], None]
"""Given a source's immutable and append-only entries (path → ``tree.UNCHANGEABLE``
attributes; None: not looked at), raises to refuse the source."""


@dataclass
class Result:
    """What a resync did (reported in the activity log and by the CLI)."""

    scanned: int = 0
    candidates: int = 0
    copied_files: int = 0
    copied_bytes: int = 0
    compared_files: int = 0
    metadata_fixed: int = 0
    deleted: int = 0
    linked: int = 0
    created_dirs: int = 0
    resumed: int = 0
    """Entries an interrupted earlier run had finished (taken from the journal)."""
    reflink: bool = False
    """Copies were reflinks (shared extents)."""
    storage: str = Storage.PLAIN.value
    """The storage backend of the target's filesystem (``storage.Storage``)."""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    """The work a resync would do (also used to estimate pending resyncs)."""

    candidates: list[str]
    deletions: list[str]
    groups: dict[str, list[str]]
    """Hard-link group leader → the other members (all candidates)."""
    members: dict[str, str]
    """Member → its leader."""
    copy_bytes: int


def plan(src: Listing, dst: Listing, known: Entries, src_is_a: bool,
         only: set[str] | None = None, multi: set[str] | None = None) -> Plan:
    """Compare the trees' entries against the manifest: what must be deleted, created or
    checked. ``only``: the names that can differ from the manifest (every other name is
    known identical: see ``state.Last``); ``multi``: the source's names with several
    links (both None: all)."""
    # One pass over each side with locals only: this runs over every entry of both trees
    # on every resync where change tracking cannot narrow it down. Signatures are the
    # records' first bytes: compared as bytes, nothing decoded.
    n = SIG_LEN
    candidates: set[str] = set()
    by_inode: dict[int, list[str]] = {}
    kget, add = known.get, candidates.add
    s_isreg, fmt = stat.S_ISREG, 0o170000
    deletions: list[str] = []
    if only is None:
        for head, kids in src.dirs.items():
            dk = dst.dirs.get(head, {})
            prefix = "" if head == ROOT else f"{head}/" if head else ""
            for name, a in kids.items():
                b = dk.get(name)
                rel = prefix + name
                if b is None or kget(rel) != (a[:n] + b[:n] if src_is_a else b[:n] + a[:n]):
                    add(rel)
        for head, kids in dst.dirs.items():
            sk = src.dirs.get(head, {})
            prefix = "" if head == ROOT else f"{head}/" if head else ""
            for name, rb in kids.items():
                ra = sk.get(name)
                if ra is None or (rec_mode(ra) ^ rec_mode(rb)) & fmt:
                    deletions.append(prefix + name)
        linked: Iterator[tuple[str, bytes]] = src.recs()
    else:
        srec, drec = src.rec, dst.rec
        for rel in only:
            sa, sb = srec(rel), drec(rel)
            if sa is not None and (sb is None or kget(rel) != (
                    sa[:n] + sb[:n] if src_is_a else sb[:n] + sa[:n])):
                add(rel)
            if sb is not None and (sa is None or (rec_mode(sa) ^ rec_mode(sb)) & fmt):
                deletions.append(rel)
        linked = ((rel, r) for rel in (multi or ()) if (r := srec(rel)) is not None)
    for rel, r in linked:
        mode, links = rec_mode_links(r)
        if links > 1 and s_isreg(mode):
            by_inode.setdefault(rec_ino(r), []).append(rel)
    groups: dict[str, list[str]] = {}
    members: dict[str, str] = {}
    for paths in by_inode.values():
        if len(paths) < 2 or not any(p in candidates for p in paths):
            continue
        paths.sort()
        candidates.update(paths)
        groups[paths[0]] = paths[1:]
        for p in paths[1:]:
            members[p] = paths[0]
    copy_bytes = 0
    for rel in candidates:
        s = src[rel]
        if stat.S_ISREG(s.st_mode) and rel not in members:
            d = dst.get(rel)
            if d is None or d.st_size != s.st_size or d.st_mtime_ns != s.st_mtime_ns:
                copy_bytes += s.st_size
    return Plan(sorted(candidates), sorted(deletions), groups, members, copy_bytes)


def _per_top(src: Listing) -> dict[str, tuple[int, int]]:
    """Top-level name → the entries and regular-file bytes of the source below it (and
    itself)."""
    out: dict[str, list[int]] = {}
    s_isreg = stat.S_ISREG

    def add(top: str, recs: Iterable[bytes]) -> None:
        cell = out.setdefault(top, [0, 0])
        for rec in recs:
            cell[0] += 1
            if s_isreg(rec_mode(rec)):
                cell[1] += rec_size(rec)

    for head, kids in src.dirs.items():
        if head == ROOT:
            continue
        if head:
            add(head.partition("/")[0], kids.values())
        else:
            for name, rec in kids.items():
                add(name, (rec,))
    return {k: (v[0], v[1]) for k, v in out.items()}


def _racy_window(state: SyncState, manifest: Manifest, src: str, dst: str) -> int:
    """The racy window of the replicas' filesystem, probed in the manifest's folder (never
    in a live tree); the safe default when the trees are on different filesystems (btrfs
    subvolumes have device numbers of their own: the filesystem's id tells)."""
    folder = manifest.path.parent
    if not snapshot.same_filesystem(src, dst, os.fspath(folder)):
        return RACY_NS
    return state.racy_window(folder)


def _mkdirs(root: str, rels: list[str]) -> None:
    for rel in rels:
        os.mkdir(join(root, rel), 0o700)


def _delete_all(root: str, rels: list[str], stats: Listing) -> None:
    for rel in rels:
        _delete(join(root, rel), stats[rel])


def _delete(path: str, st: StatLike) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class _Run:
    def __init__(self, src_root: str, dst_root: str, src: Listing, dst: Listing, p: Plan,
                 storage: Storage) -> None:
        self.src_root, self.dst_root = src_root, dst_root
        self.src, self.dst, self.plan = src, dst, p
        self.gone: set[str] = set()
        """Target entries deleted by this run (``dst`` is the tracker's: never changed)."""
        self.flags = CopyFlags(reflink=storage.clones)
        self.result = Result(storage=storage.value)

    def file_job(self, rel: str) -> tuple[str, int, str, os.stat_result | None]:
        """Bring one non-directory entry up to date.
        Returns (rel, bytes copied, action, the target's stat afterwards); action "gone"
        (nothing done, nothing vouched): the source entry vanished or changed its type
        since the scan (the next look at the tree sees it)."""
        sp, dp = join(self.src_root, rel), join(self.dst_root, rel)
        try:
            s = os.lstat(sp)  # the scan kept only a record; the copy needs every field
        except FileNotFoundError:
            return rel, 0, "gone", None
        if stat.S_IFMT(s.st_mode) != stat.S_IFMT(self.src[rel].st_mode):
            return rel, 0, "gone", None
        d: Info | None = None if rel in self.gone else self.dst.get(rel)
        if d is not None and stat.S_IFMT(d.st_mode) != stat.S_IFMT(s.st_mode):
            d = None  # deleted already: a different type stood here
        if not stat.S_ISREG(s.st_mode):
            if d is not None and stat.S_ISLNK(s.st_mode) and os.readlink(sp) == os.readlink(dp):
                apply_meta(sp, dp, s, d)
                return rel, 0, "meta", os.lstat(dp)
            if d is not None and not stat.S_ISLNK(s.st_mode) and d.st_rdev == s.st_rdev:
                apply_meta(sp, dp, s, d)
                return rel, 0, "meta", os.lstat(dp)
            copy_special(sp, dp, s)
            return rel, 0, "special", os.lstat(dp)
        group = self.plan.groups.get(rel)
        consistent = d is not None and d.st_nlink == 1 + len(group or ())
        if d is not None and consistent and group:
            ino = d.st_ino
            consistent = all(m in self.dst and m not in self.gone
                             and self.dst[m].st_ino == ino for m in group)
        if d is not None and consistent and d.st_size == s.st_size:
            if d.st_mtime_ns != s.st_mtime_ns or not same_content(sp, dp):
                return rel, s.st_size, "copy", copy_file(sp, dp, s, self.flags, d,
                                                         group is not None)
            apply_meta(sp, dp, s, d)
            return rel, 0, "compare", os.lstat(dp)
        return rel, s.st_size, "copy", copy_file(sp, dp, s, self.flags, d, group is not None)

    def chunk_job(self, rels: list[str]) -> list[tuple[str, int, str, os.stat_result | None]]:
        return [self.file_job(rel) for rel in rels]


@dataclass(frozen=True)
class _Job:
    """What a resync was asked, and what it learned before starting."""

    src: str
    dst: str
    manifest: Manifest
    state: SyncState
    src_is_a: bool
    window: int
    """The filesystem's racy window (ns); 0: fine-grained timestamps."""
    scan_start: int
    """time_ns() before the trees were looked at: later source changes are not vouched."""
    tracked: bool
    workers: int
    progress: ProgressCb | None
    check: Callable[[], None] | None
    started: float
    known: Entries
    """The manifest's entries known identical when it started (shared: never changed)."""
    resumed: int
    """How many of them an interrupted earlier resync had journaled."""
    storage: Storage
    """The backend the replicas' filesystem allows (reflink: copies are clones)."""
    screen: Screen | None = None


def resync(
    src_root: str | os.PathLike[str],
    dst_root: str | os.PathLike[str],
    manifest: Manifest,
    *,
    src_is_a: bool,
    progress: ProgressCb | None = None,
    check: Callable[[], None] | None = None,
    workers: int = WORKERS,
    state: SyncState | None = None,
    screen: Screen | None = None,
) -> Result:
    """Make ``dst_root`` identical to ``src_root`` (content and metadata). ``state``: the
    owner's sync state (change tracking, the last resync's marks); without one, both
    trees are read in full. ``screen``: called with the source's immutable and
    append-only entries as soon as the source has been looked at (None: the look did not
    tell), before anything is taken as copied; what it raises stops the resync."""
    src_r, dst_r = os.fspath(src_root), os.fspath(dst_root)
    st = state if state is not None else SyncState.once()
    try:
        with (st.holding(src_r, dst_r), st.gc.held(),
              ThreadPoolExecutor(max_workers=max(1, workers)) as pool):
            try:
                return _run(_start(src_r, dst_r, manifest, st, src_is_a, progress, check,
                                   max(1, workers), screen), pool)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                st.forget(manifest)  # its entries were changed in place, partly written
                raise
    except OSError as exc:
        hint = _HINTS.get(exc.errno or 0)
        if hint is None:
            raise
        # (a rename's target, not the temporary file renamed onto it)
        raise VolumeError(f"resync of {src_r} to {dst_r} stopped at "
                          f"{exc.filename2 or exc.filename or dst_r}: {exc.strerror}",
                          hint=hint) from exc


def _start(src_r: str, dst_r: str, manifest: Manifest, state: SyncState, src_is_a: bool,
           progress: ProgressCb | None, check: Callable[[], None] | None,
           workers: int, screen: Screen | None = None) -> _Job:
    """The target folder made, the manifest read, the clock's granularity known."""
    started = time.monotonic()
    os.makedirs(dst_r, exist_ok=True)
    known, resumed = state.load(manifest)
    window = _racy_window(state, manifest, src_r, dst_r)
    scan_start = time.time_ns()
    # see watch.py: change tracking needs fine-grained ctimes
    tracked = state.track and window == 0
    storage = detect(manifest.path.parent)
    return _Job(src_r, dst_r, manifest, state, src_is_a, window, scan_start, tracked,
                workers, progress, check, started, known, resumed, storage, screen)


def _run(job: _Job, pool: ThreadPoolExecutor) -> Result:
    """``resync``'s steps, on ``pool``."""
    src_r, dst_r, manifest, src_is_a = job.src, job.dst, job.manifest, job.src_is_a
    known, resumed = job.known, job.resumed
    window, scan_start, tracked, workers = job.window, job.scan_start, job.tracked, job.workers
    progress, check = job.progress, job.check
    trackers = job.state.trackers
    dsnap = trackers.take(dst_r, tracked)
    first: dict[Future[proc.Completed], list[str]] = {}
    if window == 0 and not known and len(dsnap.stats) == 1 and bulk.usable():
        names = sorted(os.listdir(src_r))
        first = {pool.submit(bulk.copy_group, src_r, dst_r, g): g
                 for g in bulk.groups(names, workers)}
    ssnap = trackers.take(src_r, tracked)
    if job.screen is not None:
        job.screen(ssnap.unchangeable)
    src = ssnap.stats
    only = job.state.narrowed(manifest, known, src_r, dst_r) if tracked else None
    # The entries are changed in place (a copy would cost a dict of every entry again):
    # no one else uses them while this resync holds both trees, and a resync that fails
    # has them read from the files again (``_run``'s caller).
    new: Entries = known
    # (narrowed: the last resync left only source names, and a name gone since changed)
    for rel in ([r for r in known if r not in src] if only is None
                else [r for r in only if r in known and r not in src]):
        del new[rel]
    journal = Journal(manifest)
    unsettled: list[str] = []
    made: set[str] = set()

    n = SIG_LEN

    def record(rel: str, after: StatLike | bytes | None = None, retry: bool = True,
               s: bytes | None = None) -> None:
        """Vouch for ``rel`` being identical now, if its signatures can be trusted.
        ``after``: the target's stat (or record) just taken (only used where timestamps
        are fine-grained: with a racy window the stat must follow the reference time);
        ``s``: the source's record, when at hand."""
        new.pop(rel, None)
        if s is None:
            s = src.rec(rel)
        if s is None or rec_ctime(s) >= scan_start - window:
            return  # changed on the source too recently (or since the scan)
        t = time.time_ns()
        if after is None or window != 0:
            d = record_of(os.lstat(join(dst_r, rel)))
        else:
            d = after if isinstance(after, bytes) else record_of(after)
        if rec_ctime(d) >= t - window:
            if retry:
                unsettled.append(rel)
            return
        new[rel] = p = s[:n] + d[:n] if src_is_a else d[:n] + s[:n]
        journal.add(rel, p)

    left: list[str] = []
    """After a first copy: the entries below the copied names that are not vouched for."""

    def vouch_copies(head: str, matched: bulk.Matched) -> None:
        """``record`` for a directory's entries that a ``cp`` copied, from the look at
        the copy (no racy window here), straight into the entries and not the journal
        (``Journal.rebase`` saves them all at once)."""
        t, since = time.time_ns(), scan_start - window
        prefix = f"{head}/" if head else ""
        pairs: list[tuple[str, bytes]] = []
        for name, s, d in matched:
            if rec_ctime(s) >= since:
                left.append(prefix + name)
                continue
            if rec_ctime(d) >= t:
                unsettled.append(prefix + name)
                continue
            pairs.append((name, s[:n] + d[:n] if src_is_a else d[:n] + s[:n]))
        new.update_dir(head, pairs)

    bulk_files = bulk_bytes = 0
    if first:
        counts = _per_top(src)
        total_bytes = sum(b for _, b in counts.values())
        if not job.storage.clones:
            reserve.ensure_room(dst_r, total_bytes)
        # The first copy is most of an adoption's time: say how far it is as each cp
        # group is taken (its entries counted as they are vouched for).
        copying = Progress(bytes_total=total_bytes, files_total=len(src),
                           started=job.started)

        def taken(head: str, matched: bulk.Matched) -> None:
            prefix = f"{head}/" if head else ""
            for name, was, now in matched:
                record(prefix + name, now, s=was)
                copying.files_done += 1
                if stat.S_ISREG(rec_mode(was)):
                    copying.bytes_done += rec_size(was)

        def group_done() -> None:
            reserve.check(dst_r)
            if progress is not None:
                progress(copying)
            if check is not None:
                check()

        if tracked:
            # as each group's cp ends, a look at the target (the tracker lists the new
            # copy once, while the other groups are still copying) and the group's
            # entries vouched for from it; saved as the manifest at once after the last
            every = frozenset(n for group in first.values() for n in group)

            def group_ended(names: list[str]) -> None:
                nonlocal bulk_files, bulk_bytes
                look = trackers.take(dst_r, tracked, own=every)
                f, b = bulk.take_listed(set(names), src, look.stats, vouch_copies, left)
                bulk_files, bulk_bytes = bulk_files + f, bulk_bytes + b
                for name in names:
                    files_in, bytes_in = counts.get(name, (0, 0))
                    copying.files_done += files_in
                    copying.bytes_done += bytes_in
                group_done()

            bulk.finished(first, src, made, group_ended)
            dsnap = trackers.take(dst_r, tracked, own=every)  # (a failed group's cp too)
            journal.rebase(new)
            if made == every == set(src.dirs.get("", {})) == set(dsnap.stats.dirs.get("", {})):
                # every group copied what the scan saw at the top: only what was not
                # vouched for can differ (the plan need not look at every entry again)
                only = {"", *left, *unsettled}
        else:
            bulk_files, bulk_bytes = bulk.take_copies(first, src, dst_r, taken, made,
                                                      group_done)
            dsnap = trackers.take(dst_r, tracked, own=frozenset(made))
        known = new
    dst = dsnap.stats
    p = plan(src, dst, known, src_is_a, only, None if only is None else ssnap.multi)
    run = _Run(src_r, dst_r, src, dst, p, job.storage)
    res = run.result
    res.scanned, res.candidates, res.resumed = len(src), len(p.candidates), resumed
    res.copied_files, res.copied_bytes = bulk_files, bulk_bytes
    prog = Progress(bytes_total=p.copy_bytes, files_total=len(p.candidates) + len(p.deletions))
    touched: set[str] = {""} if made else set()  # cp created entries in the root
    last_report = 0.0

    def report(force: bool = False) -> None:
        nonlocal last_report
        if force or time.monotonic() - last_report > 0.1:
            last_report = time.monotonic()
            if not completed:
                reserve.check(dst_r)
            if progress is not None:
                progress(prog)

    completed = False
    if not job.storage.clones:
        reserve.ensure_room(dst_r, p.copy_bytes)
    try:
        # 1. deletions (a deleted directory takes its contents with it); in parallel:
        # freeing a file's blocks waits on the filesystem journal
        gone: set[str] = set()
        doomed: list[str] = []
        for rel in p.deletions:
            if os.path.dirname(rel) in gone:
                if stat.S_ISDIR(dst[rel].st_mode):
                    gone.add(rel)
                continue
            doomed.append(rel)
            if stat.S_ISDIR(dst[rel].st_mode):
                gone.add(rel)
        per = max(1, -(-len(doomed) // max(1, workers)))
        list(pool.map(lambda rs: _delete_all(dst_r, rs, dst),
                      [doomed[i:i + per] for i in range(0, len(doomed), per)]))
        for rel in doomed:
            touched.add(os.path.dirname(rel))
            new.pop(rel, None)
        res.deleted = len(doomed)
        prog.files_done += len(doomed)
        run.gone.update(p.deletions)
        report()
        # 2. missing directories, parents first
        dirs = [r for r in p.candidates if stat.S_ISDIR(src[r].st_mode)]
        missing = [r for r in dirs if r not in dst or r in run.gone]
        by_depth: dict[int, list[str]] = {}
        for rel in missing:
            by_depth.setdefault(rel.count("/"), []).append(rel)
        # a level at a time (parents exist before their children), in parallel:
        # creating a directory waits on the filesystem journal
        for depth in sorted(by_depth):
            level = by_depth[depth]
            # (a thread pool's map ignores chunksize: batch by hand, 64 per task)
            list(pool.map(lambda rs: _mkdirs(dst_r, rs),
                          [level[i:i + 64] for i in range(0, len(level), 64)]))
        for rel in missing:
            made.add(rel)
            touched.add(os.path.dirname(rel))
        res.created_dirs = len(missing)
        # 3. files, symlinks, special files on the pool; hard-link members afterwards
        files = [r for r in p.candidates
                 if not stat.S_ISDIR(src[r].st_mode) and r not in p.members]
        chunks = [files[i:i + CHUNK] for i in range(0, len(files), CHUNK)]
        futures = [pool.submit(run.chunk_job, c) for c in chunks]
        for fut in futures:
            for rel, nbytes, action, after in fut.result():
                if action == "gone":
                    prog.files_done += 1
                    continue
                if action == "copy" or action == "special":
                    res.copied_files += 1
                    res.copied_bytes += nbytes
                    prog.bytes_done += nbytes
                    touched.add(os.path.dirname(rel))
                elif action == "compare":
                    res.compared_files += 1
                else:
                    res.metadata_fixed += 1
                if rel not in p.groups:
                    record(rel, after)
                prog.files_done += 1
            report()
            if check is not None:
                check()
        for leader, others in p.groups.items():
            lp = join(dst_r, leader)
            lst = os.lstat(lp)
            for rel in others:
                dp = join(dst_r, rel)
                try:
                    cur = os.lstat(dp)
                    if cur.st_ino == lst.st_ino:
                        continue
                    os.unlink(dp)
                except FileNotFoundError:
                    pass
                os.link(lp, dp)
                touched.add(os.path.dirname(rel))
                res.linked += 1
                prog.files_done += 1
            for rel in (leader, *others):
                record(rel)
        # 4. directory metadata: every entry is in place by now (in this thread: a few
        # system calls per directory gain nothing from the pool)
        for rel in set(dirs) | touched:
            if rel not in src:
                continue
            sp, dp = join(src_r, rel), join(dst_r, rel)
            try:
                s = os.lstat(sp)
            except FileNotFoundError:
                continue  # gone since the scan: the next look sees it
            if not stat.S_ISDIR(s.st_mode):
                continue
            apply_meta(sp, dp, s, os.lstat(dp))
            record(rel)
        if unsettled:
            time.sleep(window / 1e9)  # out of the racy window of our own last writes
            for rel in unsettled:
                record(rel, retry=False)
        # (only what this process copied: cp's own choice is not known)
        res.reflink = run.flags.reflink and res.copied_bytes > bulk_bytes
        completed = True
    finally:
        journal.close(done=completed)
    # take in our own writes now, not as changes next time; meanwhile the manifest is
    # written (its fsync waits on the disk, the look at the tree on the CPU)
    saved = pool.submit(manifest.settle, new, journal.written)
    final = trackers.take(dst_r, tracked, own=frozenset(made))
    saved.result()
    job.state.remember(manifest, new)
    written = trackers.changed_since(dst_r, dsnap.mark)
    if ssnap.mark is not None and final.mark is not None and written is not None:
        # Names re-read since the scan (our writes, and anything else written meanwhile):
        # settled where the target still has the signature the manifest now holds.
        fsig, nget, n = final.stats.sig, new.get, SIG_LEN
        unsure = {rel for rel in written
                  if (pr := nget(rel)) is None or fsig(rel) != (pr[n:] if src_is_a else pr[:n])}
        unsure.update(rel for rel in (*p.candidates, *touched) if rel not in new)
        job.state.leave(manifest, Last({src_r: ssnap.mark, dst_r: final.mark}, new, unsure))
    res.seconds = time.monotonic() - job.started
    report(force=True)
    return res
