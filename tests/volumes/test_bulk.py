"""The first sync into an empty replica copies the source's top-level entries with several
``cp`` processes; what they copied is taken entry by entry, the rest (hard links across
groups, a failed group) goes through the normal resync. Needs root (``cp`` can give
copies their owners only then)."""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade import proc
from activeupgrade.platform.volumes import bulk, tree
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.verify import differences
from tests.support import wait_until


@pytest.fixture
def source(tmp_path: Path, needs_root: None) -> Iterator[Path]:
    if tree.racy_window(tmp_path) != 0:
        pytest.skip("this filesystem's timestamps are coarse: no change tracking here")
    a = tmp_path / "a"
    for i in range(120):
        d = a / f"top{i % 9}" / f"sub{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(i * 7))
        os.chown(d / f"f{i}", 1000 + i % 3, 1000 + i % 2)
    (a / "top0" / "x").write_bytes(b"with an attribute")
    os.setxattr(a / "top0" / "x", "user.note", b"kept")
    os.link(a / "top1" / "sub1" / "f1", a / "top2" / "hard")  # across two groups
    os.symlink("top3", a / "to-top3")
    os.mkfifo(a / "top4" / "pipe")
    (a / "-dash").write_bytes(b"a name like an option")
    os.chmod(a / "top5", 0o750)
    os.utime(a / "top6", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    yield a


@pytest.mark.parametrize("tracked", [False, True])
def test_first_sync_by_cp_groups(source: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, tracked: bool) -> None:
    """Untracked, each group's copy is read back as it ends; tracked (the daemon), by the
    target's change tracker as it ends (the other groups still copying), which then knows
    the copy as a fresh listing of it does."""
    calls: list[list[str]] = []
    real = bulk.copy_group

    def spy(src_root: str, dst_root: str, names: list[str]) -> object:
        calls.append(names)
        return real(src_root, dst_root, names)

    monkeypatch.setattr(bulk, "copy_group", spy)
    b, meta = tmp_path / "b", tmp_path / "m"
    meta.mkdir()
    m = Manifest(meta)
    state = SyncState() if tracked else None
    res = resync(source, b, m, src_is_a=True, workers=2, state=state)
    assert len(calls) > 1  # several groups
    assert sorted(n for g in calls for n in g) == sorted(os.listdir(source))
    assert differences(source, b) == []
    assert os.getxattr(b / "top0" / "x", "user.note") == b"kept"
    assert os.stat(b / "top1" / "sub1" / "f1").st_ino == os.stat(b / "top2" / "hard").st_ino
    assert res.linked == 1  # the hard link across groups was made by the resync
    # everything cp copied is known identical: the next resync has nothing to compare
    again = resync(source, b, m, src_is_a=True, workers=2)
    assert (again.copied_files, again.compared_files, again.deleted) == (0, 0, 0)
    assert res.copied_files > 100  # taken from cp's copies, not copied again
    if state is not None:
        known = state.trackers.take(b).stats
        assert dict(known.recs()) == dict(tree.listing(b).recs())
        state.close()


@pytest.mark.parametrize("tracked", [False, True])
def test_a_failed_group_is_compared_and_fixed(source: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              tracked: bool) -> None:
    """A cp that fails half-way leaves a partial group: the normal resync completes it
    (tracked: and the target's tracker knows the result)."""
    real = bulk.copy_group

    def failing(src_root: str, dst_root: str, names: list[str]) -> object:
        done = real(src_root, dst_root, names[:1])  # copies part of the group...
        if len(names) > 1:
            (Path(dst_root) / names[0]).touch()  # ...and leaves it not quite right
            return proc.Completed(["cp"], 1, "", "cp: failed", 0.0)
        return done

    monkeypatch.setattr(bulk, "copy_group", failing)
    b, meta = tmp_path / "b", tmp_path / "m"
    meta.mkdir()
    state = SyncState() if tracked else None
    resync(source, b, Manifest(meta), src_is_a=True, workers=2, state=state)
    assert differences(source, b) == []
    if state is not None:
        assert dict(state.trackers.take(b).stats.recs()) == dict(tree.listing(b).recs())
        again = resync(source, b, Manifest(meta), src_is_a=True, workers=2, state=state)
        assert (again.copied_files, again.compared_files, again.deleted) == (0, 0, 0)
        state.close()


def test_changes_to_the_source_while_cp_copies_are_caught(
        source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracked: the source changes after its scan, while a group is being copied (a file
    added, one rewritten with its size kept, one deleted). Every group succeeds, so the
    plan looks only at what was not vouched for; what cp saw differently from the scan
    is fixed now or by the next resync, never vouched for."""
    state = SyncState()
    real, changed = bulk.copy_group, threading.Event()
    root = os.path.realpath(source)

    def racing(src_root: str, dst_root: str, names: list[str]) -> object:
        if "top7" in names and not changed.is_set():
            wait_until(lambda: root in state.trackers.roots(), 30, "the source's scan")
            (source / "top7" / "new").write_bytes(b"made after the scan")
            victim = next(p for p in sorted((source / "top7").rglob("f*")) if p.stat().st_size)
            victim.write_bytes(bytes(b ^ 0xFF for b in victim.read_bytes()))
            next(p for p in sorted((source / "top7").rglob("f*")) if p != victim).unlink()
            changed.set()
        return real(src_root, dst_root, names)

    monkeypatch.setattr(bulk, "copy_group", racing)
    b, meta = tmp_path / "b", tmp_path / "m"
    meta.mkdir()
    m = Manifest(meta)
    resync(source, b, m, src_is_a=True, workers=2, state=state)
    assert changed.is_set()
    monkeypatch.setattr(bulk, "copy_group", real)
    resync(source, b, m, src_is_a=True, workers=2, state=state)
    assert differences(source, b) == []
    again = resync(source, b, m, src_is_a=True, workers=2, state=state)
    assert (again.copied_files, again.compared_files, again.deleted) == (0, 0, 0)
    state.close()


def test_cp_copies_do_not_keep_an_acl_inherited_from_the_target(
        source: Path, tmp_path: Path) -> None:
    """The empty target folder has a default ACL; the source has none: cp's copies must
    not keep what they inherited (the resync takes them without reading attributes).
    Only cp copied files here, so the result claims no reflink of its own."""
    b, meta = tmp_path / "b", tmp_path / "m"
    b.mkdir()
    meta.mkdir()
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in (
        (0x01, 7, 0xFFFFFFFF), (0x02, 6, 65534), (0x04, 5, 0xFFFFFFFF),
        (0x10, 7, 0xFFFFFFFF), (0x20, 5, 0xFFFFFFFF)))
    try:
        os.setxattr(b, "system.posix_acl_default", acl)
    except OSError as exc:
        pytest.skip(f"no POSIX ACLs on this filesystem: {exc.strerror}")
    os.unlink(source / "top2" / "hard")  # no hard links: cp copies every file
    res = resync(source, b, Manifest(meta), src_is_a=True, workers=2)
    assert "system.posix_acl_access" not in os.listxattr(b / "top0" / "sub0" / "f0")
    assert differences(source, b) == []
    assert res.copied_files > 100 and not res.reflink
