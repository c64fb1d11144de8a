"""The engine on real files: journaling, Broken, Retry from the failed step, deadlines,
the attempt cap, abort from partial progress, recovery after an interruption."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from activeupgrade.config.model import Config
from activeupgrade.engine.engine import MAX_ATTEMPTS, Engine
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import ConfigError, StateError, StepTimeout
from activeupgrade.model.states import OperationalState as O
from activeupgrade.model.states import OperatorAction as A
from activeupgrade.model.states import Request
from activeupgrade.model.states import UpgradeState as U
from tests.core.helpers import make_engine


def run(engine: Engine, action: A) -> None:
    engine.submit(action)
    engine.wait(30)


def test_full_commit_session_does_the_file_work(tmp_path: Path) -> None:
    engine, plat, _ = make_engine(tmp_path)
    for action in (A.CHECK, A.SPLIT, A.MERGE, A.COMMIT, A.FINISH):
        run(engine, action)
        assert engine.status().operational_state is O.READY, engine.status().reason
    s = engine.status()
    assert s.upgrade_state is U.IDLE and s.session == ""
    assert (plat.live / "version").read_text() == "2\n"
    assert list(plat.upgrade.iterdir()) == []
    marks = engine.journal.marks()
    begins = [m.step for m in marks if m.phase == "begin"]
    ends = [m.step for m in marks if m.phase == "end"]
    assert begins == ends, "every step is journaled before and after it runs"
    assert "ExecuteMerge.switch" in ends


def test_failure_breaks_and_retry_resumes_from_the_failed_step(tmp_path: Path) -> None:
    engine, plat, _ = make_engine(tmp_path)
    run(engine, A.SPLIT)
    plat.fail_at = {"ExecuteMerge.switch"}
    run(engine, A.MERGE)
    s = engine.status()
    assert s.operational_state is O.BROKEN
    # ExecuteMerge shows Merge (the original: "Merge — unless Ready, the merge is still
    # under way"); abort and retry are what a Broken merge allows.
    assert s.upgrade_state is U.MERGE and s.request is Request.EXECUTE_MERGE
    assert "ExecuteMerge.switch" in s.reason and "injected failure" in s.reason
    assert (plat.live / "version").read_text() == "1\n", "the failed step changed nothing"
    with pytest.raises(StateError) as refused:
        engine.submit(A.COMMIT)
    assert refused.value.details["allowed_actions"] == ["abort", "retry"]
    plat.fail_at = set()
    run(engine, A.RETRY)
    s = engine.status()
    assert s.operational_state is O.READY and s.upgrade_state is U.MERGE
    assert plat.ran("ExecuteMerge.install") == 1, "steps done before the failure are not redone"
    assert plat.ran("PrepareMerge.inspect") == 1
    assert plat.ran("ExecuteMerge.switch") == 2
    assert (plat.live / "version").read_text() == "2\n"


@pytest.mark.parametrize(("action", "block", "shown"), [
    (A.SPLIT, "PrepareSplit.sync", U.PREPARE_SPLIT),
    (A.SPLIT, "ExecuteSplit.boot", U.SPLIT),
    (A.MERGE, "PrepareMerge.inspect", U.PREPARE_MERGE),
    (A.MERGE, "ExecuteMerge.install", U.MERGE),
])
def test_state_shown_while_a_request_runs(
    tmp_path: Path, action: A, block: str, shown: U
) -> None:
    """As in the original's status bar: Split/Busy while the split is still under way
    (ExecuteSplit), Merge/Busy while the merge runs (ExecuteMerge); Ready only at the end."""
    engine, plat, _ = make_engine(tmp_path)
    if action is A.MERGE:
        run(engine, A.SPLIT)
    plat.block_at = block
    plat.gate.clear()
    engine.submit(action)
    assert plat.blocked.wait(10)
    s = engine.status()
    assert (s.upgrade_state, s.operational_state) == (shown, O.BUSY)
    assert s.request is Request(block.split(".")[0])
    plat.gate.set()
    engine.wait(30)
    s = engine.status()
    target = U.SPLIT if action is A.SPLIT else U.MERGE
    assert (s.upgrade_state, s.operational_state) == (target, O.READY), s.reason


def test_attempt_cap_stops_retry_loops(tmp_path: Path) -> None:
    engine, plat, _ = make_engine(tmp_path)
    plat.fail_at = {"PrepareSplit.sync"}
    run(engine, A.SPLIT)
    for _ in range(MAX_ATTEMPTS - 1):
        run(engine, A.RETRY)
    assert engine.status().attempt == MAX_ATTEMPTS
    with pytest.raises(StateError, match="failed 5 times"):
        engine.submit(A.RETRY)
    plat.fail_at = set()
    engine.submit(A.RETRY, force=True)
    engine.wait(30)
    assert engine.status().upgrade_state is U.SPLIT


def test_step_deadline_makes_the_request_broken(tmp_path: Path) -> None:
    engine, plat, _ = make_engine(tmp_path)

    def slow_copy(ctx: StepContext) -> None:
        for i in range(10_000):
            (plat.upgrade / f"f{i % 50}").write_text(str(i))
            ctx.check()

    steps = plat.steps

    def patched(request, config):  # type: ignore[no-untyped-def]
        if request is Request.PREPARE_SPLIT:
            return [Step("PrepareSplit.slow", slow_copy, timeout=0.05)]
        return steps(request, config)

    plat.steps = patched  # type: ignore[method-assign]
    run(engine, A.SPLIT)
    s = engine.status()
    assert s.operational_state is O.BROKEN
    assert "exceeded its deadline" in s.reason
    err = [e for e in engine.log.entries() if e.event == "request.broken"][-1]
    assert err.details["error"]["error"] == StepTimeout.__name__


def test_abort_while_busy_stops_at_the_step_boundary(tmp_path: Path) -> None:
    engine, plat, _ = make_engine(tmp_path)
    run(engine, A.SPLIT)
    plat.block_at = "ExecuteMerge.install"
    plat.gate.clear()
    engine.submit(A.MERGE)
    assert plat.blocked.wait(10)
    assert engine.status().operational_state is O.BUSY
    for refused in (A.COMMIT, A.FINISH, A.MERGE, A.CHECK, A.RETRY):
        with pytest.raises(StateError):
            engine.submit(refused)
    engine.submit(A.ABORT)
    plat.gate.set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        s = engine.status()
        if s.action is A.ABORT and s.operational_state is not O.BUSY:
            break
        time.sleep(0.02)
    s = engine.status()
    assert s.upgrade_state is U.ABORT and s.operational_state is O.READY, s.reason
    assert plat.ran("ExecuteMerge.switch") == 0, "nothing past the boundary ran"
    assert (plat.live / "version").read_text() == "1\n"
    run(engine, A.FINISH)
    assert engine.status().upgrade_state is U.IDLE


def test_interrupted_request_is_found_broken_and_retry_completes(tmp_path: Path) -> None:
    engine, plat, store = make_engine(tmp_path)
    run(engine, A.SPLIT)
    plat.block_at = "ExecuteMerge.switch"
    plat.gate.clear()
    engine.submit(A.MERGE)
    assert plat.blocked.wait(10)
    # A second engine on the same store sees what a restarted daemon sees.
    again = Engine(engine.instance, store, engine.bus, plat)
    again.recover()
    s = again.status()
    assert s.operational_state is O.BROKEN
    assert s.reason == "interrupted at step ExecuteMerge.switch of ExecuteMerge"
    # The old worker must not go on (a killed daemon does not): its step fails on release.
    plat.fail_at = {"ExecuteMerge.switch"}
    plat.gate.set()
    engine.wait(10)
    plat.block_at = ""
    plat.fail_at = set()
    again.submit(A.RETRY)
    again.wait(30)
    assert again.status().upgrade_state is U.MERGE
    assert (plat.live / "version").read_text() == "2\n"


def test_unusable_configuration_fails_the_check_with_its_own_message(tmp_path: Path) -> None:
    """A check never breaks the instance: its failure is reported (with the error's class,
    hint and code) and the instance stays Idle/Ready."""
    engine, plat, _ = make_engine(tmp_path)

    def refuse(path: str) -> Config:
        raise ConfigError(f"{path}:3: service.shop.command: expected a list", hint="Fix it.")

    plat.idle_config = refuse  # type: ignore[method-assign]
    engine.submit(A.CHECK, config="/etc/x.toml")
    engine.wait(10)
    s = engine.status()
    assert (s.upgrade_state, s.operational_state) == (U.IDLE, O.READY)
    assert s.error is not None and s.error["error"] == "ConfigError"
    assert s.error["message"] == "/etc/x.toml:3: service.shop.command: expected a list"
    assert s.error["hint"] == "Fix it." and s.error["exit_code"] == 3
    assert s.config == "", "a check's --config does not become the next session's"
    run(engine, A.CHECK)  # and the next check may run at once
    assert engine.status().operational_state is O.READY


def test_a_session_never_starts_on_an_unreadable_configuration(tmp_path: Path) -> None:
    """`au split --config /nonexistent.toml` is refused before any session exists: nothing
    to abort, nothing wedged."""
    engine, plat, _ = make_engine(tmp_path)

    def refuse(path: str) -> Config:
        raise ConfigError(f"{path}: no such file", hint="Give an existing file.")

    plat.idle_config = refuse  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match="no such file"):
        engine.submit(A.SPLIT, config="/nonexistent.toml")
    s = engine.status()
    assert (s.upgrade_state, s.operational_state, s.session) == (U.IDLE, O.READY, "")


def test_log_newest_entries(tmp_path: Path) -> None:
    engine, _, _ = make_engine(tmp_path)
    run(engine, A.CHECK)
    everything = engine.log.entries()
    last_two = engine.log.entries(limit=2, newest=True)
    assert [e.id for e in last_two] == [e.id for e in everything[-2:]]


def test_a_reporting_step_runs_again_on_every_retry(tmp_path: Path) -> None:
    """A step marked ``rerun`` (a report of what is true now) is not skipped when Retry
    resumes its run; the others are."""
    from dataclasses import replace

    engine, plat, _ = make_engine(tmp_path)
    steps = plat.steps

    def patched(request, config):  # type: ignore[no-untyped-def]
        found = steps(request, config)
        if request is Request.EXECUTE_MERGE:
            found = [replace(st, rerun=True) if st.name == "ExecuteMerge.install" else st
                     for st in found]
        return found

    plat.steps = patched  # type: ignore[method-assign]
    run(engine, A.SPLIT)
    plat.fail_at = {"ExecuteMerge.switch"}
    run(engine, A.MERGE)
    assert engine.status().operational_state is O.BROKEN
    plat.fail_at = set()
    run(engine, A.RETRY)
    assert engine.status().upgrade_state is U.MERGE
    assert plat.ran("ExecuteMerge.install") == 2, "the rerun step ran on both attempts"
    assert plat.ran("PrepareMerge.inspect") == 1
