"""Maintenance operations take the engine's one Busy slot: declared as data beside the
transitions, refused where the graph says so, journaled and logged like requests, never
breaking the instance, giving back a Broken request as they found it, and recovered after a
crash of the daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from activeupgrade.engine import maintenance
from activeupgrade.engine.engine import Engine
from activeupgrade.errors import StateError, UsageError
from activeupgrade.model.graph import GRAPH
from activeupgrade.model.states import Operation as P
from activeupgrade.model.states import OperationalState as O
from activeupgrade.model.states import OperatorAction as A
from activeupgrade.model.states import Request
from activeupgrade.model.states import UpgradeState as U
from tests.core.helpers import make_engine


def operate(engine: Engine, operation: P, **args: object) -> dict[str, object]:
    rec = engine.submit_operation(operation, dict(args))
    engine.wait(30)
    done = maintenance.record(engine, str(rec["id"]))
    assert done is not None
    return done


def test_every_operation_is_declared_with_where_it_may_run() -> None:
    declared = {m.operation for m in GRAPH.maintenance}
    assert declared == set(P)
    assert GRAPH.allowed_operations(U.IDLE, O.READY)[:3] == [P.ADOPT, P.RELEASE, P.RESYNC]
    assert GRAPH.allowed_operations(U.IDLE, O.BUSY) == []
    assert P.EXEC in GRAPH.allowed_operations(U.SPLIT, O.BROKEN)
    assert P.ADOPT not in GRAPH.allowed_operations(U.SPLIT, O.READY)


def test_an_operation_runs_journaled_in_the_busy_slot_and_is_logged(tmp_path: Path) -> None:
    engine, plat, _ = make_engine(tmp_path)
    plat.block_at = "resync.copy"
    plat.gate.clear()
    rec = engine.submit_operation(P.RESYNC, {"to": "copy"})
    assert plat.blocked.wait(10)
    s = engine.status()
    assert (s.upgrade_state, s.operational_state, s.request) == (U.IDLE, O.BUSY, Request.RESYNC)
    assert s.operation is not None and s.operation["id"] == rec["id"]
    # One Busy slot: no action and no second operation while it runs.
    for refused in (A.CHECK, A.SPLIT):
        with pytest.raises(StateError):
            engine.submit(refused)
    with pytest.raises(StateError, match="not allowed in Idle / Busy"):
        engine.submit_operation(P.RESYNC, {"to": "again"})
    plat.gate.set()
    engine.wait(30)
    s = engine.status()
    assert (s.operational_state, s.operation) == (O.READY, None)
    assert s.last_operation == {"id": rec["id"], "operation": "resync", "outcome": "done"}
    done = maintenance.record(engine, str(rec["id"]))
    assert done is not None and done["state"] == "done"
    assert done["result"]["copied"] == ["version"]
    marks = [(m.step, m.phase) for m in engine.journal.marks() if m.run == rec["id"]]
    assert marks == [("resync.copy", "begin"), ("resync.copy", "end")]
    events = [e.event for e in engine.log.entries()]
    assert "operation.start" in events and "operation.done" in events


def test_bad_arguments_are_refused_before_the_slot_is_taken(tmp_path: Path) -> None:
    engine, _, _ = make_engine(tmp_path)
    with pytest.raises(UsageError, match="`to` must be a folder name"):
        engine.submit_operation(P.RESYNC, {"to": "../etc"})
    assert engine.status().operational_state is O.READY
    assert engine.status().operation is None


def test_a_failed_operation_never_breaks_and_a_broken_request_stays_broken(
    tmp_path: Path,
) -> None:
    engine, plat, _ = make_engine(tmp_path)
    plat.fail_at = {"PrepareSplit.sync"}
    engine.submit(A.SPLIT)
    engine.wait(30)
    broken = engine.status()
    assert broken.operational_state is O.BROKEN
    # A service may be started or stopped to repair what broke, in Broken...
    assert P.SERVICE_STOP in engine.allowed_operations()
    # ...and an operation that fails is its own failure: the request stays as it was.
    engine.graph = GRAPH  # the real rules
    plat.fail_at = {"resync.copy", "PrepareSplit.sync"}
    done = operate_in_broken(engine)
    assert done["state"] == "failed" and done["error"]["error"] == "StepError"
    s = engine.status()
    assert (s.operational_state, s.reason, s.step, s.request) == (
        O.BROKEN, broken.reason, broken.step, broken.request)
    assert s.error == broken.error
    plat.fail_at = set()
    engine.submit(A.RETRY)
    engine.wait(30)
    assert engine.status().upgrade_state is U.SPLIT


def operate_in_broken(engine: Engine) -> dict[str, object]:
    """A resync while Broken: allowed for this test by a rule that permits it there (the
    real graph allows only service and Upgrade Side repairs in Broken)."""
    from dataclasses import replace

    from activeupgrade.model.graph import MAINTENANCE, TRANSITIONS, StateGraph

    rules = tuple(replace(m, states=frozenset(U), when=frozenset({O.READY, O.BROKEN}))
                  if m.operation is P.RESYNC else m for m in MAINTENANCE)
    engine.graph = StateGraph(TRANSITIONS, GRAPH.initial, rules)
    try:
        return operate(engine, P.RESYNC, to="copy")
    finally:
        engine.graph = GRAPH


def test_an_operation_interrupted_by_a_crash_gives_the_instance_back(tmp_path: Path) -> None:
    engine, plat, store = make_engine(tmp_path)
    plat.block_at = "resync.copy"
    plat.gate.clear()
    rec = engine.submit_operation(P.RESYNC, {"to": "copy"})
    assert plat.blocked.wait(10)
    # The daemon dies here: a new engine on the same store finds the operation open.
    again = Engine(engine.instance, store, engine.bus, plat)
    again.recover()
    s = again.status()
    assert (s.operational_state, s.operation) == (O.READY, None)
    assert s.last_operation is not None and s.last_operation["outcome"] == "interrupted"
    done = maintenance.record(again, str(rec["id"]))
    assert done is not None and done["state"] == "interrupted"
    assert "resync.copy" in done["error"]["message"]
    plat.gate.set()
    engine.wait(30)
