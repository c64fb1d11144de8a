"""Random operator action sequences against the real engine (Hypothesis state machine).

Proves: no skipped or backward state; nothing advances while Busy or Broken (abort
excepted); abort possible from PrepareSplit, Split, PrepareMerge and Merge and never once
Commit has begun; finish only after Commit or Abort; retry only when Broken.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from activeupgrade.bus import Event
from activeupgrade.config.model import Config
from activeupgrade.errors import StateError
from activeupgrade.model.graph import GRAPH, StateGraph, Transition
from activeupgrade.model.states import OperationalState as O
from activeupgrade.model.states import OperatorAction as A
from activeupgrade.model.states import UpgradeState as U
from tests.core.helpers import make_engine

# The only moves of the upgrade state a session may make (SPEC §2.5), written out by hand
# so the test does not trust the graph it checks.
FORWARD = {
    (U.IDLE, U.PREPARE_SPLIT), (U.PREPARE_SPLIT, U.SPLIT), (U.SPLIT, U.PREPARE_MERGE),
    (U.PREPARE_MERGE, U.MERGE), (U.MERGE, U.COMMIT), (U.COMMIT, U.FINISH),
    (U.ABORT, U.FINISH), (U.FINISH, U.IDLE),
    (U.PREPARE_SPLIT, U.ABORT), (U.SPLIT, U.ABORT), (U.PREPARE_MERGE, U.ABORT),
    (U.MERGE, U.ABORT),
}
ABORTABLE = {U.PREPARE_SPLIT, U.SPLIT, U.PREPARE_MERGE, U.MERGE}
STEP_NAMES = [
    "PrepareSplit.sync", "ExecuteSplit.boot", "PrepareMerge.inspect", "ExecuteMerge.switch",
    "Commit.resync", "Abort.discard", "Finish.verify", "CheckReadiness.check",
]


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="au-sm-"))
        self.engine, self.plat, self.store = make_engine(self.tmp)
        self.states: list[U] = [U.IDLE]
        self.commit_begun = False
        self.engine.bus.subscribe(self._on_event)

    def _on_event(self, ev: Event) -> None:
        if ev.kind == "status":
            state = U(ev.data["upgrade_state"])
            if state != self.states[-1]:
                self.states.append(state)
                if state is U.COMMIT:
                    self.commit_begun = True
                if state is U.IDLE:
                    self.commit_begun = False

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(action=st.sampled_from(list(A)))
    def operator_action(self, action: A) -> None:
        before = self.engine.status()
        allowed = GRAPH.allowed(before.upgrade_state, before.operational_state)
        try:
            self.engine.submit(action)
        except StateError as exc:
            assert action not in allowed
            assert exc.details["allowed_actions"] == [a.value for a in allowed]
            after = self.engine.status()
            assert after.upgrade_state is before.upgrade_state
            assert after.operational_state is before.operational_state
            return
        assert action in allowed, f"{action} accepted in {before.upgrade_state}"
        self.engine.wait(30)
        after = self.engine.status()
        assert after.operational_state is not O.BUSY
        if action is A.FINISH and after.operational_state is O.READY:
            assert before.upgrade_state in (U.COMMIT, U.ABORT)
            assert after.upgrade_state is U.IDLE

    @rule(step=st.sampled_from(STEP_NAMES))
    def break_a_step(self, step: str) -> None:
        self.plat.fail_at = {step}

    @rule()
    def repair(self) -> None:
        self.plat.fail_at = set()

    @precondition(lambda self: self.engine.status().operational_state is O.BROKEN)
    @rule(action=st.sampled_from([A.SPLIT, A.MERGE, A.COMMIT, A.FINISH, A.CHECK]))
    def nothing_advances_while_broken(self, action: A) -> None:
        before = self.engine.status()
        try:
            self.engine.submit(action)
        except StateError:
            return
        raise AssertionError(f"{action} was accepted while Broken in {before.upgrade_state}")

    @precondition(lambda self: self.engine.status().operational_state is O.READY)
    @rule(probe=st.sampled_from(list(A)), abort=st.booleans())
    def while_busy_only_abort(self, probe: A, abort: bool) -> None:
        s = self.engine.status()
        allowed = GRAPH.allowed(s.upgrade_state, s.operational_state)
        starters = [a for a in (A.SPLIT, A.MERGE, A.COMMIT, A.FINISH) if a in allowed]
        if not starters:
            return
        first_request = GRAPH.transition(starters[0]).stages[0].request
        first_steps = self.plat.steps(first_request, Config())
        assert first_steps, f"{first_request} has steps to block on"
        self.plat.block_at = first_steps[0].name
        self.plat.gate.clear()
        self.plat.blocked.clear()
        self.engine.submit(starters[0])
        try:
            assert self.plat.blocked.wait(10)
            busy = self.engine.status()
            assert busy.operational_state is O.BUSY
            if probe is A.ABORT and abort and busy.upgrade_state in ABORTABLE:
                self.engine.submit(A.ABORT)
            elif probe is not A.ABORT or busy.upgrade_state not in ABORTABLE:
                try:
                    self.engine.submit(probe)
                except StateError:
                    pass
                else:
                    raise AssertionError(f"{probe} accepted while Busy")
        finally:
            self.plat.block_at = ""
            self.plat.gate.set()
        self.engine.wait(30)
        for _ in range(200):
            if self.engine.status().operational_state is not O.BUSY:
                break
            self.engine.wait(0.05)

    @invariant()
    def no_skipped_or_backward_state(self) -> None:
        for a, b in zip(self.states, self.states[1:], strict=False):
            assert (a, b) in FORWARD, f"illegal move {a} -> {b} in {self.states}"

    @invariant()
    def abort_never_after_commit_began(self) -> None:
        s = self.engine.status()
        if self.commit_begun or s.upgrade_state in (U.COMMIT, U.FINISH, U.IDLE):
            assert A.ABORT not in GRAPH.allowed(s.upgrade_state, s.operational_state)

    @invariant()
    def abort_allowed_where_promised(self) -> None:
        s = self.engine.status()
        if s.upgrade_state in ABORTABLE:
            assert A.ABORT in GRAPH.allowed(s.upgrade_state, s.operational_state)

    @invariant()
    def retry_only_when_broken(self) -> None:
        s = self.engine.status()
        allowed = GRAPH.allowed(s.upgrade_state, s.operational_state)
        assert (A.RETRY in allowed) == (s.operational_state is O.BROKEN)


EngineMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineMachine = EngineMachine.TestCase


def test_graph_validation_refuses_a_trap_state() -> None:
    broken = [t for t in GRAPH.transitions if t.action is not A.FINISH]
    try:
        StateGraph(broken, U.IDLE)
    except ValueError as exc:
        assert "trap state" in str(exc) or "unreachable" in str(exc)
    else:
        raise AssertionError("a graph without finish was accepted")


def test_graph_validation_refuses_an_unreachable_state() -> None:
    no_merge = [t for t in GRAPH.transitions if t.action is not A.MERGE]
    try:
        StateGraph(no_merge, U.IDLE)
    except ValueError as exc:
        assert "unreachable" in str(exc)
    else:
        raise AssertionError("a graph without merge was accepted")


def test_graph_refuses_costless_transition() -> None:
    bad = [Transition(t.action, t.sources, t.stages, t.target, t.when, {}, t.starts_session,
                      t.ends_session) if t.action is A.COMMIT else t for t in GRAPH.transitions]
    try:
        StateGraph(bad, U.IDLE)
    except ValueError as exc:
        assert "no declared cost" in str(exc)
    else:
        raise AssertionError("a transition without cost was accepted")
