"""The merge switchover and its reverse through the real engine, on real volumes, under load.

The software of the test service lives on a real managed system volume (adopted in
symlink mode): its ``VERSION`` file says v1 on the original replica; the "upgrade" writes
v2 into the Upgrade Side's replica. The engine runs the volume, services and backup steps
of each request (the Upgrade Side and readiness-check steps belong to other parts and are
left out here); clients keep sending requests throughout.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from activeupgrade.config.model import BackupSpec, Config, ServiceSpec, VolumeRole, VolumeSpec
from activeupgrade.engine.engine import Engine
from activeupgrade.model.states import OperationalState, OperatorAction, UpgradeState
from activeupgrade.platform.services.supervisor import Supervisor
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.platform.volumes.livepath import SYMLINK
from activeupgrade.store.db import Store
from tests.actions.helpers import act, make_engine

from .helpers import HTTPAPP, app_spec, free_port
from .load import Load, Report

ONLY = ("volumes.", "services.", "backup.")


@dataclass
class Shop:
    engine: Engine
    store: Store
    spec: ServiceSpec
    port: int
    software: Path

    def upgrade_replica(self) -> Path:
        vol = registry.by_path(self.store, str(self.software))
        assert vol is not None and vol.session.get("upgrade")
        return Path(vol.replica(vol.session["upgrade"]))

    def supervisor(self) -> Supervisor:
        return Supervisor(self.engine.instance, self.store)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    software = tmp_path / "opt-shop"
    (software / "log").mkdir(parents=True)
    shutil.copy(HTTPAPP, software / "httpapp.py")
    (software / "VERSION").write_text("v1\n")
    port = free_port()
    spec = replace(
        app_spec("shop", port, start_delay=0.2),
        command=(sys.executable, str(software / "httpapp.py"), "--version-file",
                 str(software / "VERSION"), "--start-delay", "0.2"),
    )
    cfg = Config(volumes=(VolumeSpec(str(software)),), services=(spec,),
                 backup=BackupSpec(paths=(str(software / "log" / "*.log"),)))
    engine, store = make_engine(tmp_path / "home", cfg, ONLY)
    adoption.adopt(engine.instance, store, str(software), VolumeRole.SYSTEM, mode=SYMLINK)
    shop = Shop(engine, store, spec, port, software)
    shop.supervisor().start(spec)
    yield shop
    shop.supervisor().shutdown(spec)


def run(shop: Shop, action: OperatorAction) -> None:
    st = act(shop.engine, action)
    assert st.operational_state is OperationalState.READY, st.reason


def switchovers(engine: Engine) -> list[dict[str, object]]:
    return [e.details for e in engine.log.entries() if e.event == "service.switchover"]


def split_and_upgrade(shop: Shop) -> Load:
    load = Load("127.0.0.1", shop.port, threads=8).start()
    load.wait_for(200)
    run(shop, OperatorAction.SPLIT)
    (shop.upgrade_replica() / "VERSION").write_text("v2\n")  # the "installer"
    # Production keeps writing its log during split; and changes a file nobody saves.
    (shop.software / "log" / "shop.log").write_text("orders during split\n")
    (shop.software / "notes.txt").write_text("changed on Production during split\n")
    return load


def versions(report: Report) -> list[str]:
    return [s.split()[0] for s in report.servers()]


def test_merge_then_commit_without_failed_request(shop: Shop) -> None:
    load = split_and_upgrade(shop)
    run(shop, OperatorAction.MERGE)
    load.wait_for(200)
    run(shop, OperatorAction.COMMIT)
    run(shop, OperatorAction.FINISH)
    report = load.stop()
    assert report.failed == [], report.failed[:3]
    assert versions(report) == ["v1", "v2"]  # the original software, then the upgraded
    [sw] = switchovers(shop.engine)
    assert sw["phase"] == "merge" and not sw["killed"]
    assert 0 < float(str(sw["stop_seconds"])) < shop.spec.stop_grace
    assert float(str(sw["start_seconds"])) >= 0.2  # the app's start-up was waited for
    steps = [s["step"] for s in sw["switch_steps"]]  # type: ignore[union-attr]
    # Only the switch runs while no instance serves: the backup reads the old replica
    # after the start.
    assert "volumes.switch" in steps and "backup.save" not in steps
    assert report.longest_wait >= 0.2  # clients waited in the backlog instead of failing
    assert shop.engine.status().upgrade_state is UpgradeState.IDLE
    # Startup type: saved at split, disabled on the Upgrade Side, restored at merge.
    assert shop.store.docs("startup") == {}
    [saved] = shop.store.docs("startup-saved").values()
    assert saved["enabled"] is True
    # Backup: the log from the old Production replica, kept after the session.
    [folder] = list(shop.engine.instance.backups.iterdir())
    saved_log = folder / str(shop.software / "log" / "shop.log").lstrip("/")
    assert saved_log.read_text() == "orders during split\n"
    [unsaved] = [e for e in shop.engine.log.entries() if e.event == "backup.unsaved"]
    assert str(shop.software / "notes.txt") in unsaved.details["files"]
    assert str(shop.software / "log" / "shop.log") not in unsaved.details["files"]


def test_abort_from_merge_switches_back_without_failed_request(shop: Shop) -> None:
    load = split_and_upgrade(shop)
    run(shop, OperatorAction.MERGE)
    load.wait_for(200)
    run(shop, OperatorAction.ABORT)
    load.wait_for(200)
    run(shop, OperatorAction.FINISH)
    report = load.stop()
    assert report.failed == [], report.failed[:3]
    assert versions(report) == ["v1", "v2", "v1"]  # original, upgraded, original again
    assert [sw["phase"] for sw in switchovers(shop.engine)] == ["merge", "abort"]


def test_abort_from_split_leaves_the_application_alone(shop: Shop) -> None:
    pid = shop.supervisor().status(shop.spec).pid
    load = split_and_upgrade(shop)
    run(shop, OperatorAction.ABORT)
    report = load.stop()
    assert report.failed == [] and versions(report) == ["v1"]
    assert shop.supervisor().status(shop.spec).pid == pid
    assert switchovers(shop.engine) == []
    assert shop.store.docs("startup") == {}


def test_interrupted_merge_restarts_on_abort(shop: Shop, tmp_path: Path) -> None:
    """ExecuteMerge broken after the stop and the switch (the upgraded service cannot
    start): the health gate switched back and started the original; Abort keeps it."""
    load = split_and_upgrade(shop)
    (shop.upgrade_replica() / "httpapp.py").unlink()  # a broken upgrade: cannot start
    shop.spec = replace(shop.spec, start_timeout=3.0)
    st = act(shop.engine, OperatorAction.MERGE)
    assert st.operational_state is OperationalState.BROKEN
    assert "services.start:shop" in st.reason and "rolled back" in st.reason
    assert shop.supervisor().status(shop.spec).running  # the original, without an operator
    run(shop, OperatorAction.ABORT)
    load.wait_for(200)
    report = load.stop()
    assert shop.supervisor().status(shop.spec).running
    assert report.failed == [], report.failed[:3]
    assert versions(report) == ["v1", "v1"]
