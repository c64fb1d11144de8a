"""Adoption is resumable and loses nothing; release gives the directory back; the pending
resync is estimated from the trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from activeupgrade.config.model import VolumeRole
from activeupgrade.errors import VerifyMismatch, VolumeError
from activeupgrade.instance import Instance
from activeupgrade.platform.volumes import adoption, livepath, registry, replica
from activeupgrade.store.db import Store

from .helpers import tree_hash


class Crash(Exception):
    """Stands for the tool dying at that point."""


def _tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    for i in range(50):
        (root / "sub" / f"f{i}").write_bytes(bytes([i]) * (i * 100))
    (root / "link").symlink_to("sub/f1")


@pytest.mark.parametrize("where", ["copy", "attach", "mirror"])
def test_interrupted_adoption_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      where: str) -> None:
    vol_path = tmp_path / "srv" / "app"
    _tree(vol_path)
    before = tree_hash(vol_path)
    inst = Instance(tmp_path / "home")
    inst.ensure()
    store = Store(inst.db)
    target = {"copy": (adoption, "resync"), "attach": (livepath, "show"),
              "mirror": (replica, "sync")}[where]
    real = getattr(*target)
    calls = {"n": 0}

    def crash_once(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == (2 if where == "copy" else 1):
            raise Crash(where)
        return real(*args, **kwargs)

    monkeypatch.setattr(*target, crash_once)
    with pytest.raises(Crash):
        adoption.adopt(inst, store, str(vol_path), VolumeRole.SYSTEM, mode=livepath.SYMLINK)
    # nothing is lost at the point of the crash: the content is at the path or set aside
    aside = vol_path.with_name(".app.au-adopting")
    assert tree_hash(vol_path if vol_path.exists() else aside) == before
    monkeypatch.setattr(*target, real)
    vol = adoption.adopt(inst, store, str(vol_path), VolumeRole.SYSTEM, mode=livepath.SYMLINK)
    assert vol.ready and vol.live() == "a" and vol_path.is_symlink()
    assert tree_hash(vol_path) == before
    assert not aside.exists()
    replica.verify_volume(vol)
    store.close()


def test_release_and_pending_resync(tmp_path: Path) -> None:
    vol_path = tmp_path / "srv" / "app"
    _tree(vol_path)
    inst = Instance(tmp_path / "home")
    inst.ensure()
    store = Store(inst.db)
    vol = adoption.adopt(inst, store, str(vol_path), VolumeRole.DATA, mode=livepath.SYMLINK)
    assert registry.adopted_specs(store)[0].path == str(vol_path)
    assert registry.pending_resync(store)["commit"]["bytes"] == 0
    (vol_path / "sub" / "new").write_bytes(b"x" * 5000)
    pending = registry.pending_resync(store)["commit"]
    assert pending["bytes"] == 5000 and pending["files"] >= 1
    with pytest.raises(VerifyMismatch):
        replica.verify_volume(vol)
    with pytest.raises(VolumeError):  # volumes must not overlap
        adoption.adopt(inst, store, str(vol_path / "sub"), VolumeRole.DATA)
    expected = tree_hash(vol_path)
    adoption.release(store, vol)
    assert not vol_path.is_symlink() and tree_hash(vol_path) == expected
    assert registry.all_volumes(store) == [] and not Path(vol.folder).exists()
    store.close()
