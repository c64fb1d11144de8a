"""Resync work grows with what changed, not with the tree: after k changed files the
comparison covers O(k) names; where the change tracker lost events (an inotify queue
overflow) it is detected and the resync falls back to a full compare, still exact."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.platform.volumes import resync as resync_mod
from activeupgrade.platform.volumes import tree, watch
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.verify import differences

from .helpers import FS_APPEND_FL, FS_IMMUTABLE_FL, set_flags

FILES = 3000


@pytest.fixture
def synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[tuple[Path, Path, Manifest, SyncState, list[set[str] | None]]]:
    if tree.racy_window(tmp_path) != 0:
        pytest.fail("the test filesystem's timestamps are coarse: no change tracking")
    a, b, meta = tmp_path / "a", tmp_path / "b", tmp_path / "m"
    for i in range(FILES):
        d = a / f"d{i % 30}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(b"v1 %d" % i)
    meta.mkdir()
    seen: list[set[str] | None] = []
    full_plan = resync_mod.plan

    def spy(*args: object, **kwargs: object) -> resync_mod.Plan:
        seen.append(args[4] if len(args) > 4 else None)  # type: ignore[arg-type]
        return full_plan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(resync_mod, "plan", spy)
    state = SyncState()
    m = Manifest(meta)
    resync(a, b, m, src_is_a=True, state=state)
    resync(a, b, m, src_is_a=True, state=state)  # both trees tracked from here on
    yield a, b, m, state, seen
    state.close()


def _change(a: Path, first: int, count: int) -> None:
    for i in range(first, first + count):
        (a / f"d{i % 30}" / f"f{i}").write_bytes(b"v2 %d" % i)


@pytest.mark.parametrize("k", [1, 40])
def test_compared_names_grow_with_the_changes(
        synced: tuple[Path, Path, Manifest, SyncState, list[set[str] | None]], k: int) -> None:
    a, b, m, state, seen = synced
    _change(a, 0, k)
    res = resync(a, b, m, src_is_a=True, state=state)
    only = seen[-1]
    assert only is not None, "a full compare although every event was read"
    # the changed files, their folders (mtime), and the root: nothing else
    assert {f"d{i % 30}/f{i}" for i in range(k)} <= only
    assert len(only) <= 2 * k + 31, len(only)
    assert res.copied_files == k
    assert differences(a, b) == []


def test_lost_events_fall_back_to_a_full_compare(
        synced: tuple[Path, Path, Manifest, SyncState, list[set[str] | None]]) -> None:
    a, b, m, state, seen = synced
    queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    x, y = a / "d0" / "f0", a / "d1" / "f1"
    for i in range(queued // 2 + 16):  # alternate: equal events in a row are merged
        os.utime(x, ns=(i, i))
        os.utime(y, ns=(i, i))
    _change(a, 100, 3)
    res = resync(a, b, m, src_is_a=True, state=state)
    assert seen[-1] is None, "the queue overflowed: every name must be compared"
    assert res.copied_files >= 3
    assert differences(a, b) == []
    # tracking starts again: two resyncs later the comparison is narrow once more
    resync(a, b, m, src_is_a=True, state=state)
    _change(a, 200, 2)
    res = resync(a, b, m, src_is_a=True, state=state)
    assert seen[-1] is not None and len(seen[-1]) <= 40
    assert res.copied_files == 2
    assert differences(a, b) == []


def test_a_look_reads_only_what_changed(
        synced: tuple[Path, Path, Manifest, SyncState, list[set[str] | None]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracked tree's look re-reads (``_put``) only the entries events named, and hands
    out the tracker's maps rather than copies of every entry."""
    a, _, _, state, _ = synced
    first = state.trackers.take(a)
    puts: list[str] = []
    real = watch.Tracker._put

    def counting(self: watch.Tracker, rel: str, st: tree.Entry) -> None:
        puts.append(rel)
        real(self, rel, st)

    monkeypatch.setattr(watch.Tracker, "_put", counting)
    again = state.trackers.take(a)
    assert puts == [] and again.stats is first.stats  # nothing changed: nothing read
    _change(a, 10, 5)
    changed = state.trackers.take(a)
    assert {f"d{i % 30}/f{i}" for i in range(10, 15)} <= set(puts)
    assert len(puts) <= 3 * 5 + 2, puts
    assert changed.stats[f"d{10 % 30}/f10"].st_size == len(b"v2 10")


def test_a_generation_with_many_names_is_remembered_as_unknown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A look that re-read more than HISTORY_NAMES names keeps no list of them (memory):
    a mark older than it gets None (compare everything); a later mark is still exact."""
    if tree.racy_window(tmp_path) != 0:
        pytest.fail("the test filesystem's timestamps are coarse: no change tracking")
    monkeypatch.setattr(watch, "HISTORY_NAMES", 10)
    root = tmp_path / "t"
    root.mkdir()
    trackers = watch.Trackers()
    try:
        before = trackers.take(root).mark
        assert before is not None
        (root / "few").write_bytes(b"1")
        few = trackers.take(root).mark
        assert trackers.changed_since(root, before) == {"", "few"}
        sub = root / "many"
        sub.mkdir()
        for i in range(30):
            (sub / f"f{i}").write_bytes(b"x")
        after = trackers.take(root).mark
        assert trackers.changed_since(root, before) is None
        assert trackers.changed_since(root, few) is None
        (root / "few").write_bytes(b"2")
        trackers.take(root)
        assert trackers.changed_since(root, after) == {"", "few"}
    finally:
        trackers.close()


def test_a_tracked_scan_records_what_lstat_sees(tmp_path: Path) -> None:
    """The tracker reads each entry with ``statx`` (for its attributes too): its records
    are the ones an ``lstat`` walk makes, for every kind of entry."""
    root = tmp_path / "t"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "file").write_bytes(b"x" * 5000)
    (root / "sub" / "empty").write_bytes(b"")
    os.link(root / "file", root / "sub" / "hard")
    (root / "link").symlink_to("sub/nowhere/at/all")
    os.mkfifo(root / "sub" / "fifo")
    os.chmod(root / "sub" / "deeper", 0o1750)
    if os.geteuid() == 0:
        os.mknod(root / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        os.chown(root / "sub" / "empty", 1234, 5678)
    trackers = watch.Trackers()
    try:
        snap = trackers.take(root)
        plain = tree.listing(root)
        assert dict(snap.stats.recs()) == dict(plain.recs())
        assert snap.multi == {"file", "sub/hard"} and snap.unchangeable == {}
    finally:
        trackers.close()


def test_the_tracker_knows_the_unchangeable_entries(tmp_path: Path,
                                                    needs_root: None) -> None:
    """Immutable and append-only entries, as the first scan found them and as each entry
    was last read. ``chattr`` itself makes no inotify event (the kernel does not notify
    a flag set by ioctl): a later look sees a flag only on an entry read again."""
    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    locked, growing = root / "d" / "locked", root / "growing"
    locked.write_text("x")
    growing.write_text("y")
    set_flags(locked, FS_IMMUTABLE_FL)
    trackers = watch.Trackers()
    try:
        assert trackers.take(root).unchangeable == {"d/locked": tree.IMMUTABLE}
        set_flags(growing, FS_APPEND_FL)
        assert trackers.take(root).unchangeable == {"d/locked": tree.IMMUTABLE}
        os.utime(growing)  # (an event: the entry is read again)
        assert trackers.take(root).unchangeable == {"d/locked": tree.IMMUTABLE,
                                                    "growing": tree.APPEND_ONLY}
        set_flags(locked, 0)
        os.rename(root / "d", root / "e")
        assert trackers.take(root).unchangeable == {"growing": tree.APPEND_ONLY}
        set_flags(growing, 0)
        os.utime(growing)
        assert trackers.take(root).unchangeable == {}
        assert watch.take_plain(root).unchangeable is None  # (not looked at)
    finally:
        trackers.close()
        for p in (root / "d" / "locked", root / "e" / "locked", growing):
            if p.exists():
                set_flags(p, 0)
