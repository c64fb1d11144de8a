"""The status bar's pending-resync figures: never computed while the status waits (no
tree is looked at in the caller's thread), each volume's own, and an estimate made of
measured rates rather than a constant."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.config.model import VolumeRole
from activeupgrade.instance import Instance
from activeupgrade.platform.volumes import adoption, livepath, registry, replica, tree, watch
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.store.db import Store

from ..support import wait_until


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Store, SyncState, Path, Path]]:
    inst = Instance(tmp_path / "home")
    inst.ensure()
    store = Store(inst.db)
    sys_path, data_path = tmp_path / "srv" / "sys", tmp_path / "srv" / "data"
    for root in (sys_path, data_path):
        (root / "sub").mkdir(parents=True)
        for i in range(30):
            (root / "sub" / f"f{i}").write_bytes(b"x" * i)
    adoption.adopt(inst, store, str(sys_path), VolumeRole.SYSTEM, mode=livepath.SYMLINK)
    adoption.adopt(inst, store, str(data_path), VolumeRole.DATA, mode=livepath.SYMLINK)
    state = SyncState()
    yield store, state, sys_path, data_path
    state.close()
    store.close()


def _fresh_after(state: SyncState, store: Store, since: float) -> dict[str, object]:
    """The facts once the background has computed figures after ``since``."""
    out: dict[str, object] = {}

    def ready() -> bool:
        out.update(registry.facts(store, state))
        pending = out["pending_resync"]
        return (isinstance(pending, dict) and pending["as_of"] > since
                and not state.figures.running)

    wait_until(ready, 60, "pending-resync figures computed in the background")
    return out


def test_status_facts_never_look_at_a_tree(host: tuple[Store, SyncState, Path, Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store, state, _, data_path = host
    caller = threading.get_ident()
    looked: list[str] = []
    real_scan, real_take = tree.listing, watch.Trackers.take

    def scan(root: object) -> tree.Listing:
        if threading.get_ident() == caller:
            looked.append(f"scan {root}")
        return real_scan(root)  # type: ignore[arg-type]

    def take(self: watch.Trackers, root: str, *args: object, **kw: object) -> watch.Snapshot:
        if threading.get_ident() == caller:
            looked.append(f"take {root}")
        return real_take(self, root, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tree, "listing", scan)
    monkeypatch.setattr(watch, "listing", scan)
    monkeypatch.setattr(watch.Trackers, "take", take)
    first = registry.facts(store, state)
    assert first["pending_resync"]["as_of"] == 0  # not computed yet: said so, not zero
    facts = _fresh_after(state, store, 0)
    assert facts["pending_resync"]["files"] == 0
    (data_path / "sub" / "new").write_bytes(b"y" * (3 << 20))
    state.invalidate()
    facts = _fresh_after(state, store, facts["pending_resync"]["as_of"])
    assert facts["pending_resync"]["bytes"] == 3 << 20
    assert looked == [], looked


def test_each_volume_has_its_own_figures(host: tuple[Store, SyncState, Path, Path]) -> None:
    """19.5: ``au volume show SYS`` showed a data volume's pending resync."""
    store, state, sys_path, data_path = host
    (data_path / "sub" / "big").write_bytes(b"d" * 70000)
    (sys_path / "sub" / "f3").write_bytes(b"changed")
    facts = _fresh_after(state, store, 0)
    per = facts["pending_by_volume"]
    assert isinstance(per, dict)
    sys_name, data_name = registry.name_for(str(sys_path)), registry.name_for(str(data_path))
    assert per[data_name]["commit"]["bytes"] == 70000
    assert per[sys_name]["commit"]["bytes"] == len(b"changed")
    assert per[sys_name]["commit"]["files"] == 1
    totals = facts["pending_resync"]
    assert isinstance(totals, dict) and totals["bytes"] == 70000 + len(b"changed")
    # the figures computed now, for a plan or a check, agree
    now = registry.pending_resync(store, state=state)["commit"]["volumes"]
    assert now[data_name]["bytes"] == 70000 and now[sys_name]["bytes"] == len(b"changed")


def test_estimate_comes_from_measured_rates(host: tuple[Store, SyncState, Path, Path]) -> None:
    store, state, _, data_path = host
    vol = registry.require(store, str(data_path))
    for i in range(300):
        (data_path / "sub" / f"n{i}").write_bytes(b"z" * 1000)
    replica.sync(store, vol, "a", "b", state=state)
    vol = registry.require(store, str(data_path))
    assert vol.fps != registry.DEFAULT_FPS  # 300 entries handled: a rate measured
    replica.sync(store, vol, "a", "b", state=state)
    vol = registry.require(store, str(data_path))
    assert vol.base > 0  # nothing to do: the fixed cost measured
    (data_path / "sub" / "more").write_bytes(b"m" * 5000)
    est = registry.pending_resync(store, state=state)["commit"]["volumes"][vol.name]
    assert est["seconds_estimate"] == registry.seconds_for(vol, 5000, est["files"])
    assert est["seconds_estimate"] >= vol.base > 0


def test_background_keeps_the_trackers_of_volumes_behind_a_symlink(tmp_path: Path) -> None:
    """Trackers are kept by real path: a replica folder reached through a symlink is not
    taken for a released volume's (which would make every resync read the trees again)."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    inst = Instance(tmp_path / "link" / "home")
    inst.ensure()
    store = Store(inst.db)
    state = SyncState()
    try:
        path = tmp_path / "srv" / "app"  # the volume itself at a real path (adoption
        # refuses a live path through a symlink); its replicas behind the link
        path.mkdir(parents=True)
        (path / "f").write_bytes(b"x")
        vol = adoption.adopt(inst, store, str(path), VolumeRole.DATA, mode=livepath.SYMLINK)
        registry.refresh_figures(store, state)
        serial = state.trackers.take(vol.replica("a")).mark
        registry.refresh_figures(store, state)
        again = state.trackers.take(vol.replica("a")).mark
        assert serial is not None and again is not None
        assert again.tracker == serial.tracker  # the same tracker: not dropped and rebuilt
        assert state.figures.error == ""
    finally:
        state.close()
        store.close()
