"""``au check`` through the entry point, against a real daemon."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.api.client import Client
from activeupgrade.checks.catalogue import ON_DEMAND
from activeupgrade.errors import ConfigError, UsageError
from activeupgrade.instance import Instance
from tests import support


def au(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return support.au(home, *args, timeout=300)  # a full check run may take a while


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = support.new_instance(tmp_path / "home")
    yield h
    au(h, "daemon", "--stop")


def test_check_json_before_any_volume_warns_and_lists_every_check(home: Path) -> None:
    assert Client.for_instance(Instance(home)).get("/checks/last")["ran"] is False
    r = au(home, "check", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [c["id"] for c in report["checks"]] == list(ON_DEMAND)
    assert report["ready"] is True
    failed = {c["id"]: c["severity"] for c in report["checks"] if not c["ok"]}
    assert failed["AU-C002"] == "warning"
    assert set(failed.values()) == {"warning"}  # e.g. AU-C009 when another instance's link


def test_check_exits_60_naming_the_failed_checks(home: Path, tmp_path: Path) -> None:
    r = au(home, "check", "--volume", str(tmp_path / "gone"))
    assert r.returncode == 60, r.stderr
    assert "FAIL AU-C002 volumes-exist" in r.stdout
    assert "not ready: AU-C002 volumes-exist, AU-C003 volumes-managed" in r.stderr
    status = json.loads(au(home, "status", "--json").stdout)
    assert status["upgrade_state"] == "Idle" and status["operational_state"] == "Ready"


def test_check_json_with_one_adopted_volume_lists_every_check_with_its_verdict(
    home: Path, tmp_path: Path
) -> None:
    vol = tmp_path / "app"
    (vol / "bin").mkdir(parents=True)
    (vol / "bin" / "run").write_text("x")
    adopted = au(home, "volume", "adopt", str(vol), "--role", "system")
    assert adopted.returncode == 0, adopted.stderr
    try:
        r = au(home, "check", "--json")
        report = json.loads(r.stdout)
        assert [c["id"] for c in report["checks"]] == list(ON_DEMAND)
        for c in report["checks"]:
            assert c["verdict"] in ("pass", "fail") and c["severity"] in ("error", "warning")
            assert c["message"]
        by_id = {c["id"]: c for c in report["checks"]}
        for check_id in ("AU-C002", "AU-C003", "AU-C004", "AU-C005", "AU-C006"):
            assert by_id[check_id]["ok"], by_id[check_id]
        assert r.returncode == (0 if report["ready"] else 60)
        text = au(home, "check")
        assert "AU-C003 volumes-managed" in text.stdout
    finally:
        au(home, "volume", "release", str(vol))


def test_check_with_a_bad_config_is_refused_before_running(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[volume]]\npath = "relative"\n')
    bad.chmod(0o644)
    r = au(home, "check", "--config", str(bad))
    assert r.returncode == 3 and f"{bad}:2: volume[1].path" in r.stderr


def test_checks_api_catalogue_and_plan_errors(home: Path) -> None:
    client = Client.for_instance(Instance(home))
    catalogue = client.get("/checks/catalogue")
    assert [c["id"] for c in catalogue["checks"]][:3] == ["AU-C001", "AU-C002", "AU-C003"]
    assert catalogue["sets"]["CheckReadiness"] == list(ON_DEMAND)
    with pytest.raises(ConfigError, match="no such configuration file"):
        client.post("/plan", {"config": "missing.toml"})
    with pytest.raises(UsageError, match="run_actions"):
        client.post("/plan", {"run_actions": "yes"})
    plan = client.post("/plan", {})
    assert plan["config"]["source"] == "" and plan["ready"] is True
