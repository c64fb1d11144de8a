"""Full sessions on real trees through the engine: split, merge, commit or abort."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activeupgrade.config.model import VolumeRole
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperatorAction, UpgradeState
from activeupgrade.platform.volumes import adoption, livepath, registry, replica, tree

from .helpers import act, engine_for, session_config, tree_hash, unmount_under

MODES = [livepath.SYMLINK, pytest.param(livepath.BIND, marks=pytest.mark.root)]


def _setup(tmp_path: Path, mode: str) -> tuple[Path, Path, Path]:
    home = tmp_path / "home"
    sysv, datav = tmp_path / "opt" / "app", tmp_path / "var" / "app"
    (sysv / "bin").mkdir(parents=True)
    (sysv / "bin" / "app").write_text("version 1\n")
    (sysv / "etc.conf").write_text("setting=1\n")
    (sysv / "lib").mkdir()
    (sysv / "lib" / "old.so").write_text("old\n")
    datav.mkdir(parents=True)
    (datav / "db").write_text("row 1\n")
    return home, sysv, datav


def _adopt(home: Path, sysv: Path, datav: Path, mode: str) -> None:
    _engine, store = engine_for(home)
    inst = Instance(home)
    adoption.adopt(inst, store, str(sysv), VolumeRole.SYSTEM, mode=mode)
    adoption.adopt(inst, store, str(datav), VolumeRole.DATA, mode=mode)
    store.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("outcome", ["commit", "abort-split", "abort-merge"])
def test_session(tmp_path: Path, mode: str, outcome: str, request: pytest.FixtureRequest) -> None:
    if mode == livepath.BIND:
        request.getfixturevalue("needs_root")
    home, sysv, datav = _setup(tmp_path, mode)
    _adopt(home, sysv, datav, mode)
    cfg = session_config(tmp_path / "configs", [(sysv, "system"), (datav, "data")])
    engine, store = engine_for(home, cfg)
    try:
        original = tree_hash(sysv)
        act(engine, OperatorAction.SPLIT)
        assert engine.status().upgrade_state is UpgradeState.SPLIT
        vol = registry.require(store, str(sysv))
        upgrade = Path(vol.replica(vol.session["upgrade"]))
        # the installer writes a new version into the Upgrade Side's replica
        (upgrade / "bin" / "app").write_text("version 2\n")
        (upgrade / "bin" / "new-tool").write_text("tool\n")
        assert (sysv / "bin" / "app").read_text() == "version 1\n"
        (datav / "db").write_text("row 1\nrow 2 during split\n")
        (sysv / "etc.conf").write_text("setting=2 on production\n")
        (sysv / "lib" / "old.so").unlink()  # still in the upgraded replica
        original = tree_hash(sysv)
        if outcome == "abort-split":
            act(engine, OperatorAction.ABORT)
        else:
            act(engine, OperatorAction.MERGE)
            assert (sysv / "bin" / "app").read_text() == "version 2\n"
            assert registry.merged(store)
            (datav / "db").write_text("row 1\nrow 2 during split\nrow 3 merged\n")
            changes = store.query(
                "SELECT details FROM log WHERE event = 'volume.production-changes'")
            listed = [json.loads(row["details"])["paths"] for row in changes]
            # exactly the files Production changed
            assert ["etc.conf", "lib/old.so"] in listed, listed
            if tree.racy_window(tmp_path) == 0:
                # the daemon's change tracking ran since the split: only the names
                # changed since were looked at, no whole-tree read
                assert not store.query("SELECT id FROM log WHERE "
                                       "event = 'volume.production-changes.read'")
            act(engine, OperatorAction.COMMIT if outcome == "commit" else OperatorAction.ABORT)
        act(engine, OperatorAction.FINISH)
        assert engine.status().upgrade_state is UpgradeState.IDLE
        if outcome == "commit":
            assert (sysv / "bin" / "app").read_text() == "version 2\n"
            assert (sysv / "bin" / "new-tool").exists()
        else:
            assert tree_hash(sysv) == original
        expected = "row 1\nrow 2 during split\n" + ("row 3 merged\n" if outcome != "abort-split"
                                                    else "")
        assert (datav / "db").read_text() == expected
        assert not registry.merged(store)
        for v in registry.all_volumes(store):
            replica.verify_volume(v)
            assert v.duplex and not v.session
        assert registry.facts(store)["duplex"] is True
        for v in registry.all_volumes(store):
            adoption.release(store, v)
        assert (sysv / "bin").is_dir() and not sysv.is_symlink() and not livepath.mounted(sysv)
    finally:
        store.close()
        unmount_under(tmp_path)
