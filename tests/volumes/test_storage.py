"""Storage backends, chosen from the replicas' filesystem: reflink copies on XFS (a real
XFS filesystem with ``reflink=1`` on a loop image), plain directories on the test's own
filesystem; ``au volume show``'s document names the backend."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.checks.runner import CheckEnv, run_one
from activeupgrade.config.model import Config, VolumeRole, VolumeSpec
from activeupgrade.errors import VolumeError
from activeupgrade.instance import Instance
from activeupgrade.platform.volumes import adoption, livepath, registry, replica, snapshot
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.storage import Storage, detect
from activeupgrade.platform.volumes.tree import RACY_NS
from activeupgrade.platform.volumes.verify import differences
from activeupgrade.store.db import Store

BIG = 64 << 20


def _loop_fs(tmp_path_factory: pytest.TempPathFactory, mkfs: list[str]) -> Iterator[Path]:
    """A filesystem made by ``mkfs`` on a sparse 512 MiB image, loop-mounted."""
    problem = "" if os.geteuid() == 0 else "needs root (mounts a loop image)"
    if problem:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but this test cannot run: {problem}")
        pytest.skip(problem)
    base = tmp_path_factory.mktemp(mkfs[0])
    img, mnt = base / "fs.img", base / "mnt"
    mnt.mkdir()
    with open(img, "wb") as fh:
        fh.truncate(512 << 20)
    subprocess.run([*mkfs, str(img)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        img.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def xfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An XFS filesystem with reflinks, loop-mounted for the module's tests."""
    yield from _loop_fs(tmp_path_factory, ["mkfs.xfs", "-q", "-m", "reflink=1"])


@pytest.fixture(scope="module")
def btrfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from _loop_fs(tmp_path_factory, ["mkfs.btrfs", "-q"])


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


def test_detected_per_filesystem(xfs: Path, btrfs: Path, tmp_path: Path) -> None:
    assert detect(xfs) is Storage.REFLINK
    assert detect(btrfs) is Storage.REFLINK
    assert detect(tmp_path) is Storage.PLAIN  # ext4 (or tmpfs): no shared extents
    for where in (xfs, btrfs, tmp_path):
        assert not [n for n in os.listdir(where) if n.startswith(".au-")]  # scratch gone


def test_resync_on_xfs_clones(xfs: Path) -> None:
    """A large changed file costs no space on the target: a reflink, not a copy."""
    root = xfs / "clones"
    a, b, meta = root / "a", root / "b", root / "m"
    a.mkdir(parents=True)
    b.mkdir()
    meta.mkdir()
    (a / "small").write_bytes(b"x")
    state = SyncState()
    try:
        resync(a, b, Manifest(meta), src_is_a=True, state=state)
        (a / "big").write_bytes(os.urandom(BIG))
        os.sync()
        before = _free(xfs)
        res = resync(a, b, Manifest(meta), src_is_a=True, state=state)
        os.sync()
        assert res.reflink and res.storage == "reflink" and res.copied_bytes == BIG
        assert before - _free(xfs) < BIG // 8  # shared extents: no second copy
        assert differences(a, b) == []
    finally:
        state.close()


def test_volume_on_xfs_shows_reflink(xfs: Path, tmp_path: Path) -> None:
    inst = Instance(xfs / "home")
    inst.ensure()
    store = Store(inst.db)
    try:
        path = xfs / "srv" / "app"
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "f").write_bytes(os.urandom(1 << 20))
        vol = adoption.adopt(inst, store, str(path), VolumeRole.SYSTEM,
                             mode=livepath.SYMLINK)
        assert vol.view()["storage"] == "reflink"
        assert registry.require(store, vol.name).last_resync["storage"] == "reflink"
        adoption.release(store, vol)
    finally:
        store.close()
    other = Instance(tmp_path / "home")
    other.ensure()
    store = Store(other.db)
    try:
        path = tmp_path / "srv" / "app"
        path.mkdir(parents=True)
        (path / "f").write_bytes(b"plain")
        vol = adoption.adopt(other, store, str(path), VolumeRole.SYSTEM,
                             mode=livepath.SYMLINK)
        assert vol.view()["storage"] == "plain"
        adoption.release(store, vol)
    finally:
        store.close()


def _subvolume(path: Path) -> None:
    subprocess.run(["btrfs", "-q", "subvolume", "create", str(path)], check=True,
                   stdout=subprocess.DEVNULL)


def _subvolume_and_instance(fs: Path, name: str) -> tuple[Instance, Store, SyncState, Path]:
    """An instance whose home is on ``fs`` and a new subvolume there to adopt."""
    inst = Instance(fs / f"home-{name}")
    inst.ensure()
    path = fs / f"srv-{name}"
    _subvolume(path)
    return inst, Store(inst.db), SyncState(), path


def _subvolume_facts(path: Path) -> dict[str, str]:
    """``btrfs subvolume show``'s "Name: value" lines."""
    out = subprocess.run(["btrfs", "subvolume", "show", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return {k.strip(): v.strip() for k, _, v in
            (line.partition(":") for line in out.splitlines()[1:]) if v}


def test_adopting_a_subvolume_makes_replica_b_a_snapshot(btrfs: Path) -> None:
    """On btrfs, a directory that is a subvolume gets replica B as a snapshot of it:
    no block copied, no file read; afterwards resync carries changes as usual and release
    deletes the snapshot."""
    inst, store, state, path = _subvolume_and_instance(btrfs, "snap")
    (path / "db").mkdir()
    (path / "db" / "big").write_bytes(os.urandom(BIG))
    for i in range(200):
        (path / "db" / f"row{i}").write_bytes(os.urandom(i * 37))
    os.link(path / "db" / "row1", path / "db" / "row1.link")
    os.symlink("row2", path / "db" / "current")
    # and Debian's own files: this host's /etc (alternatives symlinks, certificates,
    # restrictive modes and groups such as shadow's)
    subprocess.run(["cp", "-a", "/etc", str(path / "etc")], check=True)
    os.sync()
    # entries changed in the racy window before the snapshot are compared, not trusted:
    # let the clock leave it, so that every entry is vouched for by the snapshot
    last = time.time_ns()  # every entry was changed before now
    while time.time_ns() <= last + RACY_NS:
        time.sleep(0.005)
    before = _free(btrfs)
    try:
        said: list[str] = []
        vol = adoption.adopt(inst, store, str(path), VolumeRole.DATA, mode=livepath.BIND,
                             state=state, report=said.append)
        os.sync()
        assert before - _free(btrfs) < BIG // 8  # shared blocks: the big file not copied
        assert vol.view()["storage"] == "snapshot"
        assert any("snapshot" in line for line in said)
        original = _subvolume_facts(path)
        made = _subvolume_facts(Path(vol.replica("b")))
        assert made["Parent UUID"] == original["UUID"]  # btrfs says: a snapshot of it
        done = registry.require(store, vol.name).last_resync
        assert done["storage"] == "snapshot" and done["copied_bytes"] == 0
        assert done["scanned"] == 0  # not a file looked at: the manifest is written later
        assert vol.manifest.pending_path.exists()
        assert differences(vol.replica("a"), vol.replica("b")) == []
        # the readiness check of a split takes the two subvolumes as one filesystem
        cfg = Config(volumes=(VolumeSpec(str(path), VolumeRole.DATA),))
        same = run_one("AU-C005", CheckEnv(instance=inst, store=store, config=cfg))
        assert same.ok, same.message

        (path / "db" / "row3").write_bytes(b"written after the adoption")
        (path / "db" / "row4").unlink()
        res = replica.sync(store, vol, "a", "b", state=state)
        assert res.copied_files == 1 and res.deleted == 1
        # the manifest written from the snapshot vouched for every other file: none read
        assert res.compared_files == 0 and not vol.manifest.pending_path.exists()
        # change tracking kept across the two subvolumes (each its own device number):
        # the next resync looks only at what changed since
        assert state.last(vol.manifest, keep=True) is not None
        assert differences(vol.replica("a"), vol.replica("b")) == []
        assert replica.verify_volume(vol, full=True, state=state) > 200

        adoption.release(store, vol, state=state)
        assert not any(v.startswith("home-snap") for v in _subvolumes(btrfs))
        assert (path / "db" / "row3").read_bytes() == b"written after the adoption"
        assert not livepath.mounted(path)
    finally:
        state.close()
        store.close()


def test_a_subvolume_with_an_immutable_file_is_refused_and_its_snapshot_deleted(
        btrfs: Path) -> None:
    """The look for immutable files runs beside the snapshot: found, the snapshot already
    made is deleted, the bind mount undone and the volume forgotten."""
    inst, store, state, path = _subvolume_and_instance(btrfs, "locked")
    (path / "deep").mkdir()
    locked = path / "deep" / "locked"
    locked.write_bytes(b"x")
    subprocess.run(["chattr", "+i", str(locked)], check=True)
    try:
        with pytest.raises(VolumeError) as exc:
            adoption.adopt(inst, store, str(path), VolumeRole.DATA, mode=livepath.BIND,
                           state=state)
        assert "deep/locked is immutable" in exc.value.message and exc.value.hint
        assert not any(v.startswith("home-locked") for v in _subvolumes(btrfs))
        assert registry.all_volumes(store) == [] and not livepath.mounted(path)
        assert locked.read_bytes() == b"x"
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
        state.close()
        store.close()


def _subvolumes(fs: Path) -> list[str]:
    """The paths ``btrfs subvolume list`` gives for ``fs``'s subvolumes."""
    out = subprocess.run(["btrfs", "subvolume", "list", str(fs)], check=True,
                         capture_output=True, text=True).stdout
    return [line.split(" path ", 1)[1] for line in out.splitlines()]


def test_a_subvolume_holding_another_is_copied(btrfs: Path) -> None:
    """A snapshot would hold only an empty folder where a nested subvolume is: such a
    directory is copied instead (reflinks), nested files included."""
    inst, store, state, path = _subvolume_and_instance(btrfs, "nested")
    (path / "top").write_bytes(b"top")
    _subvolume(path / "inner")
    (path / "inner" / "deep").write_bytes(b"in the nested subvolume")
    try:
        vol = adoption.adopt(inst, store, str(path), VolumeRole.DATA, mode=livepath.BIND,
                             state=state)
        assert vol.view()["storage"] == "reflink"
        assert (Path(vol.replica("b")) / "inner" / "deep").read_bytes() == \
            b"in the nested subvolume"
        assert differences(vol.replica("a"), vol.replica("b")) == []
        adoption.release(store, vol, state=state)
        assert (path / "inner" / "deep").exists()
    finally:
        state.close()
        store.close()


def test_subvolumes_are_one_filesystem(btrfs: Path, xfs: Path) -> None:
    """A btrfs subvolume has a device number of its own: ``same_filesystem`` (what the
    readiness check AU-C005 and the racy window ask) still takes it as the filesystem it
    is, and another filesystem as another."""
    _subvolume(btrfs / "sub-one")
    (btrfs / "plain-dir").mkdir()
    assert os.stat(btrfs / "sub-one").st_dev != os.stat(btrfs / "plain-dir").st_dev
    assert snapshot.same_filesystem(str(btrfs / "sub-one"), str(btrfs / "plain-dir"))
    assert not snapshot.same_filesystem(str(btrfs / "sub-one"), str(xfs))
