"""``au plan``: read back from the recipe, changes nothing unless asked to run actions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from activeupgrade.activity import ActivityLog
from activeupgrade.bus import Bus
from activeupgrade.config.model import (
    ActionSpec,
    BackupSpec,
    Config,
    ControlType,
    MergeSpec,
    ServiceSpec,
    SocketSpec,
    Timing,
    VolumeRole,
    VolumeSpec,
)
from activeupgrade.instance import Instance
from activeupgrade.model.states import Request
from activeupgrade.present.plan import plan_lines
from activeupgrade.session import recipe
from activeupgrade.session.plan import build_plan
from activeupgrade.store.db import Store
from tests.actions.helpers import write_recorder
from tests.support import au, new_instance

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Instance, Store, ActivityLog]]:
    instance = Instance(tmp_path / "home")
    instance.ensure()
    store = Store(instance.db)
    yield instance, store, ActivityLog(store, Bus(), instance.logs)
    store.close()


def _config(tmp_path: Path) -> tuple[Config, Path]:
    system = tmp_path / "opt"
    calls = tmp_path / "calls.jsonl"
    for name in ("early", "late", "stop", "ready"):
        write_recorder(system / name, calls)
    (system / "log").mkdir()
    (system / "log" / "app.log").write_text("12345")
    cfg = Config(
        volumes=(VolumeSpec(str(system)),),
        services=(ServiceSpec("web", command=(str(system / "early"),),
                              sockets=(SocketSpec("http", "127.0.0.1:0"),)),),
        actions=(
            ActionSpec("late", str(system / "late"), ControlType.ADVANCED, ("late",),
                       timing=Timing.LATE),
            ActionSpec("early", str(system / "early"), ControlType.ADVANCED, ("early",),
                       timing=Timing.EARLY),
            ActionSpec("stop", str(system / "stop"), ControlType.STOP_APPLICATION, ("stop",)),
            ActionSpec("ready", str(system / "ready"), ControlType.READINESS_CHECK,
                       ("ready",)),
        ),
        backup=BackupSpec((str(system / "log" / "*.log"), str(system / "nothing"))),
    )
    return cfg, calls


def test_plan_reads_the_recipe_and_changes_nothing(
    world: tuple[Instance, Store, ActivityLog], tmp_path: Path
) -> None:
    instance, store, log = world
    cfg, calls = _config(tmp_path)
    plan = build_plan(instance, store, log, cfg)
    assert not calls.exists()  # no action ran
    requests = {(r["request"], r["abort_from"]): r for r in plan["requests"]}
    merge = requests[("ExecuteMerge", None)]
    assert [s["name"] for s in merge["steps"]] == [
        s.name for s in recipe.request_steps(Request.EXECUTE_MERGE, cfg)]
    assert ("Abort", "Split") in requests and ("Abort", "Merge") in requests
    by_request = {r["request"]: r["actions"] for r in plan["actions"]}
    split = [f"{a['name']}@{a['side']}" for a in by_request["PrepareSplit"]]
    assert split.index("early@Production") < split.index("late@Production")
    assert "ready@Production" in split
    assert [a["name"] for a in by_request["ExecuteMerge"]][:2] == ["early", "stop"]
    assert plan["services"][0]["held_sockets"] == ["127.0.0.1:0"]
    assert plan["services"][0]["hold_limit"] == cfg.services[0].hold_limit
    assert any(f"at most {cfg.services[0].hold_limit:g}s" in line
               for line in plan_lines(plan))
    assert plan["disruption"]["known"] is False and "web" in plan["disruption"]["text"]
    backup = {f["path"]: f for f in plan["backup"]["files"]}
    assert backup[str(tmp_path / "opt" / "log" / "app.log")]["bytes"] == 5
    assert backup[str(tmp_path / "opt" / "nothing")]["note"] == "nothing matches now"
    checks = {c["id"]: c for c in plan["checks"]}
    assert checks["AU-C016"]["details"]["skipped"] is True
    assert "resync" in plan and plan["actions_run"] is False
    json.dumps(plan)  # the API sends it as JSON


def test_measured_switchover_gives_the_expected_disruption(
    world: tuple[Instance, Store, ActivityLog], tmp_path: Path
) -> None:
    instance, store, log = world
    cfg, _ = _config(tmp_path)
    store.put_doc("switchover", "s1:merge:web", {"stop_began": 100.0, "old_exited": 100.5,
                                                "start_began": 100.7, "healthy_at": 101.25})
    plan = build_plan(instance, store, log, cfg)
    assert plan["services"][0]["measured"] == {"stop_seconds": 0.5, "start_seconds": 0.55,
                                               "gap_seconds": 0.75, "measured_at": 100.0}
    assert plan["disruption"] == {
        "known": True, "seconds": 0.75, "text": "about 0.75s per service (last measured); "
        "listening sockets are held: clients wait instead of failing"}


def test_run_actions_runs_them_once_in_a_dry_run(
    world: tuple[Instance, Store, ActivityLog], tmp_path: Path
) -> None:
    instance, store, log = world
    cfg, calls = _config(tmp_path)
    plan = build_plan(instance, store, log, cfg, run_actions=True)
    ran = [json.loads(line) for line in calls.read_text().splitlines()]
    names = [r["name"] for r in ran]
    assert sorted(names) == ["early", "late", "ready", "stop"]
    assert all(r["env"]["ACTIVE_UPGRADE_DRY_RUN"] == "1" for r in ran)
    assert {c["id"]: c for c in plan["checks"]}["AU-C016"]["ok"] is True
    assert all(r.get("ok", True) for r in plan["action_results"])


def test_au_plan_json_through_the_entry_point(tmp_path: Path) -> None:
    home = new_instance(tmp_path / "home")
    try:
        r = au(home, "plan", "--json", "--config", str(EXAMPLES / "shop.toml"))
        assert r.returncode == 0, r.stderr
        plan = json.loads(r.stdout)
        assert plan["config"]["source"] == str(EXAMPLES / "shop.toml")
        assert plan["ready"] is False  # /opt/shop is not on this host
        assert [s["name"] for s in plan["services"]] == ["shop", "shop-db"]
        text = au(home, "plan", "--config", str(EXAMPLES / "shop.toml"))
        assert "Expected disruption at merge: unknown" in text.stdout
        assert "drain@Production" in text.stdout
    finally:
        au(home, "daemon", "--stop")


def test_plan_tells_the_checkpoints_and_the_confirmation_window(
    world: tuple[Instance, Store, ActivityLog], tmp_path: Path
) -> None:
    instance, store, log = world
    cfg, _ = _config(tmp_path)
    data = tmp_path / "var-db"
    cfg = replace(cfg, volumes=(*cfg.volumes, VolumeSpec(str(data), VolumeRole.DATA,
                                                         checkpoint=True)),
                  merge=MergeSpec(600.0))
    plan = build_plan(instance, store, log, cfg)
    assert plan["volumes"][-1] == {"path": str(data), "role": "data", "checkpoint": True}
    assert plan["confirm_within"] == 600.0
    assert plan["checkpoints"] == [{"path": str(data), "checkpoint": None}]
    text = "\n".join(plan_lines(plan))
    assert f"{data} (data, checkpoint at merge: restorable by an abort from Merge)" in text
    assert "Confirmation after merge: within 600s" in text
    assert f"{data}: not taken yet" in text
    steps = {(r["request"], r["abort_from"]): [s["name"] for s in r["steps"]]
             for r in plan["requests"]}
    assert "volumes.checkpoint-presync" in steps[("PrepareMerge", None)]
    merge = steps[("ExecuteMerge", None)]
    assert merge.index("volumes.checkpoint") < merge.index("volumes.switch")
    assert merge[-1] == "merge.confirm-window"
    assert {"volumes.checkpoint-save", "volumes.checkpoint-restore"} <= set(
        steps[("Abort", "Merge")])
    assert "volumes.checkpoint-release" in steps[("Commit", None)]
