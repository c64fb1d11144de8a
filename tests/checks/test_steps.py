"""The check steps inside real requests of the engine."""

from __future__ import annotations

import sys
from pathlib import Path

from activeupgrade.checks.catalogue import UPGRADE_SIDE
from activeupgrade.checks.runner import last_report
from activeupgrade.config.model import (
    ActionSpec,
    Config,
    ControlType,
    UpgradeSideSpec,
    VolumeSpec,
)
from activeupgrade.model.states import OperationalState, OperatorAction, UpgradeState
from tests.actions.helpers import act, make_engine


def _config(tmp_path: Path, exit_code: int) -> Config:
    system = tmp_path / "opt"
    action = system / "ready"
    action.parent.mkdir(parents=True, exist_ok=True)
    action.write_text(f"#!{sys.executable}\nimport sys\nprint('checking')\n"
                      f"sys.stderr.write('schema too old\\n')\nsys.exit({exit_code})\n")
    action.chmod(0o755)
    return Config(
        volumes=(VolumeSpec(str(system)),),
        actions=(ActionSpec("ready", str(action), ControlType.READINESS_CHECK),),
        upgrade_side=UpgradeSideSpec(packages=(str(tmp_path / "missing.tar.gz"),)),
    )


def test_check_on_demand_records_results_and_never_breaks(tmp_path: Path) -> None:
    engine, store = make_engine(tmp_path / "home", _config(tmp_path, 3), only=("checks.",))
    status = act(engine, OperatorAction.CHECK)
    assert status.operational_state is OperationalState.READY
    assert status.upgrade_state is UpgradeState.IDLE
    report = last_report(store)
    assert report is not None and report["ready"] is False
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id["AU-C016"]["ok"] is False and "schema too old" in by_id["AU-C016"]["message"]
    assert by_id["AU-C017"]["ok"] is False
    assert by_id["AU-C013"]["ok"] is True
    for check in report["checks"]:
        assert set(check) >= {"id", "severity", "ok", "message", "action"}
    events = [r["event"] for r in store.query("SELECT event FROM log")]
    assert "check.fail" in events and "check.done" in events


def test_final_check_breaks_prepare_split_naming_the_failed_checks(tmp_path: Path) -> None:
    engine, store = make_engine(tmp_path / "home", _config(tmp_path, 0), only=("checks.",))
    status = act(engine, OperatorAction.SPLIT)
    assert status.operational_state is OperationalState.BROKEN
    assert status.upgrade_state is UpgradeState.PREPARE_SPLIT
    assert status.step == "checks.final"
    assert "AU-C017 packages-local" in status.reason
    assert "AU-C016" not in status.reason  # the readiness action passed
    report = last_report(store)
    assert report is not None and report["session"] == status.session


def test_upgrade_side_checks_break_prepare_merge_when_the_side_is_down(tmp_path: Path) -> None:
    cfg = Config(volumes=(VolumeSpec(str(tmp_path)),))
    engine, store = make_engine(tmp_path / "home", cfg, only=("checks.upgrade-side",))
    assert act(engine, OperatorAction.SPLIT).upgrade_state is UpgradeState.SPLIT
    status = act(engine, OperatorAction.MERGE)
    assert status.operational_state is OperationalState.BROKEN
    assert status.upgrade_state is UpgradeState.PREPARE_MERGE
    assert status.step == "checks.upgrade-side"
    assert "AU-C020 upgrade-side-up (the Upgrade Side is None)" in status.reason
    report = last_report(store)
    assert report is not None and report["side"] == "Upgrade"
    assert [c["id"] for c in report["checks"]] == list(UPGRADE_SIDE)
