"""Adopting and switching a live path as root: the original directory stays in place as
replica A, B is one copy, and no lookup of the path ever fails or finds it empty — not
while adopting, not at a switch to B and back, not at release. A single-file bind mount
inside the tree (a container's /etc/resolv.conf) neither breaks adoption nor gets lost when
B is shown."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.config.model import VolumeRole
from activeupgrade.errors import VolumeError
from activeupgrade.instance import EngineLock, Instance
from activeupgrade.platform.volumes import (
    adoption,
    bulk,
    livepath,
    mounts,
    registry,
    replica,
    resync,
)
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.store.db import Store
from tests.support import au, wait_until

from .helpers import FS_APPEND_FL, FS_IMMUTABLE_FL, set_flags, tree_hash, unmount_under

POLLER = r"""
import os, sys
path, stop, ready = sys.argv[1:4]
lookups = failures = 0
first = ""
while not os.path.exists(stop):
    lookups += 1
    try:
        names = os.listdir(path)
        with open(os.path.join(path, "marker")) as fh:
            seen = fh.read()
        if "marker" not in names or seen not in ("A", "B"):
            raise OSError(f"saw {sorted(names)[:5]} and marker {seen!r}")
    except OSError as exc:
        failures += 1
        first = first or str(exc)
    if lookups % 200 == 0:
        with open(ready, "w") as fh:
            fh.write(str(lookups))
print(lookups, failures, first)
"""


class Poller:
    """Another process looking the path up and reading a file in it, as fast as it can."""

    def __init__(self, path: Path, folder: Path) -> None:
        self.stop, self.ready = folder / "stop", folder / "count"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", POLLER, str(path), str(self.stop), str(self.ready)],
            stdout=subprocess.PIPE, text=True)
        self.passed()

    def count(self) -> int:
        try:
            return int(self.ready.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def passed(self) -> None:
        """Wait until the poller has looked again (it runs across what was just done)."""
        seen = self.count()
        wait_until(lambda: self.count() > seen, 30, "the poller looking the path up")

    def result(self) -> tuple[int, int, str]:
        self.stop.touch()
        out, _ = self.proc.communicate(timeout=30)
        lookups, failures, first = out.split(" ", 2)
        return int(lookups), int(failures), first.strip()


@pytest.fixture
def live_tree(tmp_path: Path, needs_root: None) -> Iterator[Path]:
    path = tmp_path / "srv" / "etc"
    (path / "sub").mkdir(parents=True)
    (path / "marker").write_text("A")
    for i in range(200):
        (path / "sub" / f"f{i}").write_bytes(bytes([i % 256]) * (i * 37))
    (path / "link").symlink_to("sub/f1")
    (path / "resolv.conf").write_text("underlying\n")
    (tmp_path / "resolv.host").write_text("nameserver 127.0.0.53\n")
    subprocess.run(["mount", "--bind", str(tmp_path / "resolv.host"),
                    str(path / "resolv.conf")], check=True)
    try:
        yield path
    finally:
        unmount_under(tmp_path)


def _instance(tmp_path: Path) -> tuple[Instance, Store]:
    inst = Instance(tmp_path / "home")
    inst.ensure()
    return inst, Store(inst.db)


def test_adopt_keeps_the_original_in_place_and_switches_without_a_gap(
        tmp_path: Path, live_tree: Path) -> None:
    inst, store = _instance(tmp_path)
    before = os.stat(live_tree)
    content = tree_hash(mounts_free_view(live_tree))
    poller = Poller(live_tree, tmp_path)

    vol = adoption.adopt(inst, store, str(live_tree), VolumeRole.SYSTEM, mode=livepath.BIND)
    poller.passed()
    assert vol.ready and vol.live() == "a" and vol.problem() is None
    assert (os.stat(live_tree).st_ino, os.stat(live_tree).st_dev) == \
        (before.st_ino, before.st_dev), "the original directory is still the live path"
    assert not livepath.mounted(live_tree), "nothing is mounted on the path while A is live"
    assert (Path(vol.replica("a")) / "resolv.conf").read_text() == "underlying\n"
    assert (Path(vol.replica("b")) / "resolv.conf").read_text() == "underlying\n"
    assert (live_tree / "resolv.conf").read_text() == "nameserver 127.0.0.53\n"
    assert tree_hash(Path(vol.replica("b"))) == content
    replica.verify_volume(vol)
    assert not list(live_tree.parent.glob(".*au-adopting"))

    (Path(vol.replica("b")) / "marker").write_text("B")
    for letter in ("b", "a", "b"):
        vol.intended = letter
        registry.save(store, vol)
        assert replica.switch(vol, letter)
        poller.passed()
        assert (live_tree / "marker").read_text() == letter.upper()
        assert vol.problem() is None
        # the container's single-file bind is shown on whichever replica is live
        assert (live_tree / "resolv.conf").read_text() == "nameserver 127.0.0.53\n"

    (live_tree / "new-on-b").write_text("written while B was live\n")
    adoption.release(store, vol)
    poller.passed()
    lookups, failures, first = poller.result()
    assert failures == 0, f"{failures} of {lookups} lookups failed; first: {first}"
    assert os.stat(live_tree).st_ino == before.st_ino
    assert (live_tree / "new-on-b").read_text() == "written while B was live\n"
    assert (live_tree / "marker").read_text() == "B", "release kept the live content"
    assert registry.all_volumes(store) == [] and not Path(vol.folder).exists()
    assert [m for m in mounts.table() if m.point.startswith(str(tmp_path / "home"))] == []
    store.close()


def mounts_free_view(path: Path) -> Path:
    """The tree without the mounts inside it (what replica A and B hold)."""
    view = path.parent / ".view"
    view.mkdir(exist_ok=True)
    if not livepath.mounted(view):
        mounts.bind_private(str(path), str(view))
    return view


def test_reboot_shows_the_original_then_reattach_restores_the_intended_replica(
        tmp_path: Path, live_tree: Path) -> None:
    inst, store = _instance(tmp_path)
    vol = adoption.adopt(inst, store, str(live_tree), VolumeRole.SYSTEM, mode=livepath.BIND)
    (Path(vol.replica("b")) / "marker").write_text("B")
    vol.intended = "b"
    registry.save(store, vol)
    replica.switch(vol, "b")
    # a reboot: every mount of the volume is gone, the path shows the original directory
    for point in (str(live_tree), vol.replica("a")):
        while livepath.mounted(point):
            subprocess.run(["umount", "-l", point], check=True)
    assert (live_tree / "marker").read_text() == "A"
    assert vol.problem() is not None
    assert not registry.facts(store)["duplex"]
    done, failed = registry.reattach(store)
    assert len(done) == 1 and "replica b" in done[0] and failed == []
    assert (live_tree / "marker").read_text() == "B" and vol.problem() is None
    assert registry.reattach(store) == ([], [])
    store.close()



def test_a_live_path_that_cannot_be_attached_is_said_and_the_daemon_starts(
        tmp_path: Path, live_tree: Path) -> None:
    """A replica that cannot be shown (its folder gone) is an error line of its own in the
    daemon's start, never a crash of the daemon and never an "attached again"."""
    home = tmp_path / "home"
    try:
        assert au(home, "volume", "adopt", str(live_tree), "--role", "system").returncode == 0
        r = au(home, "daemon", "--stop")
        assert r.returncode == 0 and "daemon stopped" in r.stdout, r.stderr
        with EngineLock(Instance(home)):  # --stop returns once the daemon let it go
            pass
        store = Store(Instance(home).db)
        vol = registry.all_volumes(store)[0]
        vol.intended = "b"  # as after a commit
        registry.save(store, vol)
        store.close()
        for point in (str(live_tree), vol.replica("a")):
            while livepath.mounted(point):
                subprocess.run(["umount", "-l", point], check=True)
        aside = Path(vol.replica("b") + ".aside")
        os.rename(vol.replica("b"), aside)
        try:
            assert au(home, "status").returncode == 0, "the daemon started all the same"
            errors = au(home, "log", "--event", "volume.reattach.error").stdout
            assert f"{live_tree}: not attached" in errors, errors
            assert "attached again" not in au(home, "log", "--event", "volume.reattach").stdout
            assert (live_tree / "marker").read_text() == "A", "the original is shown"
        finally:
            au(home, "daemon", "--stop")
            os.rename(aside, vol.replica("b"))
        r = au(home, "volume", "attach", str(live_tree))
        assert r.returncode == 0 and (live_tree / "marker").read_text() == "A", r.stderr
    finally:
        au(home, "daemon", "--stop")
        unmount_under(tmp_path)

@pytest.mark.parametrize("flag", [FS_IMMUTABLE_FL, FS_APPEND_FL])
def test_refuses_a_tree_with_an_unchangeable_file_and_leaves_nothing(
        tmp_path: Path, needs_root: None, flag: int) -> None:
    path = tmp_path / "srv" / "app"
    (path / "deep" / "er").mkdir(parents=True)
    locked = path / "deep" / "er" / "locked.log"
    locked.write_text("x")
    before = tree_hash(path)
    set_flags(locked, flag)
    home = tmp_path / "home"
    try:
        r = au(home, "volume", "adopt", str(path), "--role", "data")
        assert r.returncode == 20 and "Traceback" not in r.stderr, r.stderr
        assert str(locked) in r.stderr and "chattr" in r.stderr
        word = "immutable" if flag == FS_IMMUTABLE_FL else "append-only"
        assert word in r.stderr
        set_flags(locked, 0)
        assert tree_hash(path) == before
        assert not list(path.parent.glob(".*au-*"))
        assert [m for m in mounts.table() if m.point.startswith(str(home))] == []
        assert au(home, "volume", "adopt", str(path), "--role", "data").returncode == 0
    finally:
        set_flags(locked, 0)
        au(home, "daemon", "--stop")
        unmount_under(tmp_path)


@pytest.mark.parametrize("tracked", [True, False], ids=["tracked", "read-in-full"])
def test_an_unchangeable_file_stops_the_copy_of_a_large_tree(
        tmp_path: Path, needs_root: None, monkeypatch: pytest.MonkeyPatch,
        tracked: bool) -> None:
    """An unchangeable file in a tree of thousands stops the copy (the groups not yet
    started never start) and leaves neither a replica nor a mount. Tracked (the daemon's
    way), the copy's own look at the source finds it (no second walk of the tree); read
    in full, ``refuse_unchangeable`` does. Here the copying waits until the refusal."""
    refused = threading.Event()
    refuse, look, copy = adoption._refuse, adoption.refuse_unchangeable, bulk.copy_group
    started: list[list[str]] = []
    walks: list[str] = []

    def refusing(path: str, root: str, shown_as: str, attrs: int) -> None:
        refused.set()
        refuse(path, root, shown_as, attrs)

    def looking(root: str, shown_as: str) -> int:
        walks.append(root)
        return look(root, shown_as)

    def copying(src_root: str, dst_root: str, names: list[str]) -> object:
        started.append(names)
        wait_until(refused.is_set, 60, "the refusal of the unchangeable file")
        return copy(src_root, dst_root, names)

    monkeypatch.setattr(adoption, "_refuse", refusing)
    monkeypatch.setattr(adoption, "refuse_unchangeable", looking)
    monkeypatch.setattr(bulk, "copy_group", copying)
    path = tmp_path / "srv" / "big"
    for d in range(40):
        folder = path / f"d{d:02d}"
        folder.mkdir(parents=True)
        for f in range(100):
            (folder / f"f{f}").write_bytes(b"x" * f)
    locked = path / "d00" / "zz-locked"
    locked.write_text("x")
    set_flags(locked, FS_APPEND_FL)
    inst, store = _instance(tmp_path)
    state = SyncState(track=tracked)
    try:
        with pytest.raises(VolumeError) as exc:
            adoption.adopt(inst, store, str(path), VolumeRole.DATA, mode=livepath.BIND,
                           state=state)
        assert f"{locked} is append-only" in exc.value.message
        assert len(walks) == (0 if tracked else 1), walks
        groups = len(bulk.groups(sorted(os.listdir(path)), resync.WORKERS))
        assert 0 < len(started) < groups, (len(started), groups)
        assert registry.all_volumes(store) == []
        assert not any(m.point.startswith(str(tmp_path / "home")) for m in mounts.table())
        assert not (tmp_path / "home" / "replicas" / registry.name_for(str(path))).exists()
    finally:
        state.close()
        set_flags(locked, 0)
        store.close()
        unmount_under(tmp_path)


def test_refuses_what_is_not_a_plain_folder(tmp_path: Path, live_tree: Path) -> None:
    inst, store = _instance(tmp_path)
    (tmp_path / "tmpfs").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "au-test", str(tmp_path / "tmpfs")], check=True)
    (tmp_path / "via").symlink_to(live_tree.parent)
    adoption.adopt(inst, store, str(live_tree), VolumeRole.SYSTEM, mode=livepath.BIND)
    refused = {
        "/": "root directory", "/proc": "kernel", "/sys/kernel": "kernel", "/dev": "kernel",
        "/run/lock": "kernel", str(tmp_path / "tmpfs"): "mount point (tmpfs)",
        str(tmp_path / "via" / "etc"): "through a symlink",
        str(live_tree / "sub"): "overlaps the managed volume",
        str(live_tree.parent): "overlaps the managed volume",
        str(tmp_path / "home" / "replicas"): "instance folder",
    }
    for path, why in refused.items():
        with pytest.raises(VolumeError) as exc:
            adoption.adopt(inst, store, path, VolumeRole.SYSTEM, mode=livepath.BIND)
        assert why in exc.value.message and exc.value.hint, (path, exc.value.message)
    assert [v.path for v in registry.all_volumes(store)] == [str(live_tree)]
    store.close()


class Crash(Exception):
    """Stands for the tool dying at that point."""


def test_an_adoption_interrupted_while_copying_b_resumes_even_after_a_reboot(
        tmp_path: Path, live_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inst, store = _instance(tmp_path)
    before = os.stat(live_tree).st_ino
    content = tree_hash(mounts_free_view(live_tree))
    real = replica.sync

    def crash(*args: object, **kwargs: object) -> object:
        raise Crash("copying b")

    monkeypatch.setattr(replica, "sync", crash)
    with pytest.raises(Crash):
        adoption.adopt(inst, store, str(live_tree), VolumeRole.SYSTEM, mode=livepath.BIND)
    vol = registry.by_path(store, str(live_tree))
    assert vol is not None and vol.phase == "bound"
    assert os.stat(live_tree).st_ino == before and tree_hash(mounts_free_view(live_tree)) \
        == content, "the original is untouched where it was"
    # a reboot in the middle: the bind of replica a is gone too
    subprocess.run(["umount", "-l", vol.replica("a")], check=True)
    monkeypatch.setattr(replica, "sync", real)
    vol = adoption.adopt(inst, store, str(live_tree), VolumeRole.SYSTEM, mode=livepath.BIND)
    assert vol.ready and vol.problem() is None and os.stat(live_tree).st_ino == before
    assert tree_hash(Path(vol.replica("b"))) == content
    replica.verify_volume(vol)
    store.close()
