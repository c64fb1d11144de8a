"""A script action of every control type through whole sessions, checked against SPEC §6.

Each action is the same recorder script (on the system volume) called with its own name;
it appends when it ran, its arguments and its ``ACTIVE_UPGRADE_*`` environment to a file.
The engine runs the real volume, Upgrade Side, services, actions and backup steps; the
order and environment seen are compared with what SPEC §6 says (written out below) and
with what ``planned_actions`` (``au plan``) announces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activeupgrade.config.model import (
    ActionSpec,
    Config,
    ControlType,
    Timing,
    UpgradeSideSpec,
    VolumeRole,
    VolumeSpec,
)
from activeupgrade.model.states import OperationalState, OperatorAction, Request, Side
from activeupgrade.platform.volumes import adoption
from activeupgrade.platform.volumes.livepath import SYMLINK
from activeupgrade.session.plan import planned_actions

from .helpers import act, make_engine, records, write_recorder

P, U = Side.PRODUCTION.value, Side.UPGRADE.value
ADV = ("early", "default", "late")
Y, N = "Yes", "No"

# SPEC §6 / §3: advanced actions run at every request, early before the request's work and
# default/late after it, on the sides the request acts on (both at ExecuteSplit and
# PrepareMerge; the Upgrade Side's early ones once it exists); stop-application on the
# Upgrade Side at split and on Production at merge; start-application and backup at merge.
#
# What each action sees, as the original's manual defines the variables (Active Upgrade
# User's Guide, table 3-5 and the status-bar table): ACTIVE_UPGRADE_STATE is the upgrade
# state shown (Split while ExecuteSplit runs, Merge while ExecuteMerge runs);
# ACTIVE_UPGRADE_REQUEST is the task being executed, Stop / Start / Backup while an
# application-control or backup phase runs; ACTIVE_UPGRADE_HW_SPLIT is Yes while the
# system runs split (here: while an Upgrade Side exists, from its start at ExecuteSplit to
# its stop at merge or abort).
#          request          action       side state           REQUEST          HW_SPLIT
SEEN: dict[str, list[tuple[str, str, str, str, str]]] = {
    "PrepareSplit": [("early", P, "PrepareSplit", "PrepareSplit", N),
                     ("default", P, "PrepareSplit", "PrepareSplit", N),
                     ("late", P, "PrepareSplit", "PrepareSplit", N)],
    "ExecuteSplit": [("early", P, "Split", "ExecuteSplit", N),      # before side.start
                     ("early", U, "Split", "ExecuteSplit", Y),
                     ("stop-app", U, "Split", "Stop", Y),
                     ("default", P, "Split", "ExecuteSplit", Y),
                     ("late", P, "Split", "ExecuteSplit", Y),
                     ("default", U, "Split", "ExecuteSplit", Y),
                     ("late", U, "Split", "ExecuteSplit", Y)],
    "PrepareMerge": [("early", P, "PrepareMerge", "PrepareMerge", Y),
                     ("early", U, "PrepareMerge", "PrepareMerge", Y),
                     ("default", P, "PrepareMerge", "PrepareMerge", Y),
                     ("late", P, "PrepareMerge", "PrepareMerge", Y),
                     ("default", U, "PrepareMerge", "PrepareMerge", Y),
                     ("late", U, "PrepareMerge", "PrepareMerge", Y)],
    "ExecuteMerge": [("early", P, "Merge", "ExecuteMerge", Y),
                     ("stop-app", P, "Merge", "Stop", Y),            # side stopped after it
                     ("start-app", P, "Merge", "Start", N),
                     ("backup", P, "Merge", "Backup", N),
                     ("default", P, "Merge", "ExecuteMerge", N),
                     ("late", P, "Merge", "ExecuteMerge", N)],
    "Commit": [("early", P, "Commit", "Commit", N), ("default", P, "Commit", "Commit", N),
               ("late", P, "Commit", "Commit", N)],
    # (abort from merge: the applications move back, so their actions run)
    "Abort": [("early", P, "Abort", "Abort", N), ("stop-app", P, "Abort", "Stop", N),
              ("start-app", P, "Abort", "Start", N), ("default", P, "Abort", "Abort", N),
              ("late", P, "Abort", "Abort", N)],
    "Finish": [("early", P, "Finish", "Finish", N), ("default", P, "Finish", "Finish", N),
               ("late", P, "Finish", "Finish", N)],
}
EXPECTED: dict[str, list[tuple[str, str]]] = {
    req: [(name, side) for name, side, *_ in rows] for req, rows in SEEN.items()}


def session_config(tmp_path: Path, isolation: str) -> tuple[Config, Path]:
    software = tmp_path / "opt-app"
    log = tmp_path / "records.jsonl"
    rec = str(write_recorder(software / "bin" / "record", log))
    actions = [
        ActionSpec("late", rec, ControlType.ADVANCED, args=("late", "%ACTIVE_UPGRADE_SIDE%"),
                   timing=Timing.parse("after")),
        ActionSpec("default", rec, ControlType.ADVANCED, args=("default",)),
        ActionSpec("early", rec, ControlType.ADVANCED, args=("early",),
                   timing=Timing.parse("before")),
        ActionSpec("stop-app", rec, ControlType.STOP_APPLICATION, args=("stop-app",)),
        ActionSpec("start-app", rec, ControlType.START_APPLICATION, args=("start-app",)),
        ActionSpec("backup", rec, ControlType.BACKUP, args=("backup",)),
        ActionSpec("ready", rec, ControlType.READINESS_CHECK, args=("ready",)),
    ]
    cfg = Config(volumes=(VolumeSpec(str(software), VolumeRole.SYSTEM),),
                 actions=tuple(actions), source=str(tmp_path / "app.toml"),
                 upgrade_side=UpgradeSideSpec(isolation=isolation))
    return cfg, log


def run_session(tmp_path: Path, isolation: str, ending: OperatorAction) -> tuple[
    list[dict[str, Any]], Config, str
]:
    cfg, log = session_config(tmp_path, isolation)
    engine, store = make_engine(tmp_path / "home", cfg,
                                ("volumes.", "side.", "services.", "actions.", "backup."))
    adoption.adopt(engine.instance, store, cfg.volumes[0].path, VolumeRole.SYSTEM,
                   mode=SYMLINK)
    session = ""
    for action in (OperatorAction.SPLIT, OperatorAction.MERGE, ending, OperatorAction.FINISH):
        st = act(engine, action)
        assert st.operational_state is OperationalState.READY, st.reason
        session = session or st.session
    return records(log, store), cfg, session


def check(got: list[dict[str, Any]], cfg: Config, requests: list[str]) -> None:
    expected = [(name, side) for req in requests for name, side in EXPECTED[req]]
    seen = [(r["name"], r["env"]["ACTIVE_UPGRADE_SIDE"]) for r in got]
    assert seen == expected
    session = got[0]["env"]["ACTIVE_UPGRADE_SESSION"]
    assert session
    table = [(req, *row) for req in requests for row in SEEN[req]]
    for r, (req, name, side, state, request, hw) in zip(got, table, strict=True):
        assert r["env"] == {
            "ACTIVE_UPGRADE_SIDE": side,
            "ACTIVE_UPGRADE_STATE": state,
            "ACTIVE_UPGRADE_REQUEST": request,
            "ACTIVE_UPGRADE_HW_SPLIT": hw,
            "ACTIVE_UPGRADE_SESSION": session,
            "ACTIVE_UPGRADE_ATTEMPT": "1",
            "ACTIVE_UPGRADE_CONFIG": cfg.source,
            "ACTIVE_UPGRADE_DRY_RUN": "0",
        }, (req, name, side)
        if r["name"] == "late":
            assert r["args"] == [r["env"]["ACTIVE_UPGRADE_SIDE"]]  # %NAME% substituted
    times = [r["at"] for r in got]
    assert times == sorted(times)  # one at a time, in order
    # `au plan` announces the same actions in the same order (readiness-check actions run
    # inside the readiness checks, which this test leaves out).
    plan = planned_actions(cfg)
    for req in requests:
        announced = [(a.name, sd.value) for sd, a in plan[Request(req)]
                     if a.control is not ControlType.READINESS_CHECK]
        assert announced == EXPECTED[req], req
    assert [(sd, a.name) for sd, a in plan[Request.PREPARE_MERGE]
            if a.control is ControlType.READINESS_CHECK] == [(Side.UPGRADE, "ready")]


COMMIT = ["PrepareSplit", "ExecuteSplit", "PrepareMerge", "ExecuteMerge", "Commit", "Finish"]
ABORT = ["PrepareSplit", "ExecuteSplit", "PrepareMerge", "ExecuteMerge", "Abort", "Finish"]


def test_commit_session_directory_side(tmp_path: Path) -> None:
    got, cfg, _ = run_session(tmp_path, "directory", OperatorAction.COMMIT)
    check(got, cfg, COMMIT)


def test_abort_session_directory_side(tmp_path: Path) -> None:
    got, cfg, _ = run_session(tmp_path, "directory", OperatorAction.ABORT)
    check(got, cfg, ABORT)


def test_commit_and_abort_sessions_in_namespaces(tmp_path: Path, needs_root: None) -> None:
    got, cfg, _ = run_session(tmp_path / "c", "namespaces", OperatorAction.COMMIT)
    check(got, cfg, COMMIT)
    got, cfg, _ = run_session(tmp_path / "a", "namespaces", OperatorAction.ABORT)
    check(got, cfg, ABORT)


def test_upgrade_side_action_needs_the_side_up(tmp_path: Path) -> None:
    """An Upgrade Side action with no Upgrade Side fails plainly (never runs on the host)."""
    from activeupgrade.errors import SideError
    from activeupgrade.instance import Instance
    from activeupgrade.platform.actions.inside import enter

    with pytest.raises(SideError, match="not up"):
        enter(Instance(tmp_path / "home"))


def test_application_actions_at_abort_only_when_applications_moved(tmp_path: Path) -> None:
    """Stop-application and start-application run at an abort from merge (the
    applications move back), never at an abort from split."""
    for ending_from, expect in (("merge", ["stop-app", "start-app"]), ("split", [])):
        root = tmp_path / ending_from
        cfg, log = session_config(root, "directory")
        cfg = Config(volumes=cfg.volumes, source=cfg.source, upgrade_side=cfg.upgrade_side,
                     actions=tuple(a for a in cfg.actions if a.control in (
                         ControlType.STOP_APPLICATION, ControlType.START_APPLICATION)))
        engine, store = make_engine(root / "home", cfg, ("volumes.", "side.", "actions."))
        adoption.adopt(engine.instance, store, cfg.volumes[0].path, VolumeRole.SYSTEM,
                       mode=SYMLINK)
        path = [OperatorAction.SPLIT] + ([OperatorAction.MERGE] if ending_from == "merge"
                                         else []) + [OperatorAction.ABORT]
        for action in path:
            st = act(engine, action)
            assert st.operational_state is OperationalState.READY, st.reason
        at_abort = [r["name"] for r in records(log)
                    if r["env"]["ACTIVE_UPGRADE_STATE"] == "Abort"]
        assert at_abort == expect, ending_from
