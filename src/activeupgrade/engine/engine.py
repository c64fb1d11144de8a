"""The engine: executes operator actions as requests of durable, idempotent steps.

One place changes the state (``_set``), journals it and publishes it. A request runs in a
worker thread; each step is journaled before and after it runs (``runner.py``). A failure
makes the request Broken with the reason and the error's document (class, message, hint,
exit code), so clients can show the real cause; Retry resumes from the failed step
(completed steps of the same run are skipped); Abort runs its own steps from any partial
progress. After a crash a Busy request is found Broken "interrupted at step X". The
readiness check never breaks the instance: it reports, and its failure is shown with the
instance still Ready. Maintenance operations (``maintenance.py``) take the same Busy slot.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from activeupgrade.activity import ActivityLog, Context
from activeupgrade.bus import Bus, EventKind
from activeupgrade.config.model import Config
from activeupgrade.durable import write_durably
from activeupgrade.engine import confirm, maintenance
from activeupgrade.engine.journal import Journal
from activeupgrade.engine.platform import Platform
from activeupgrade.engine.progress import ProgressTracker
from activeupgrade.engine.runner import Run, run_steps
from activeupgrade.engine.status import (
    ABORT_OPTIONS,
    Status,
    load_status,
    new_id,
    save_status,
)
from activeupgrade.engine.steps import CancelToken, Step
from activeupgrade.engine.view import VIEW_FORMAT, StatusView
from activeupgrade.errors import AUError, Interrupted, StateError, StepError
from activeupgrade.instance import Instance
from activeupgrade.model.graph import CONFIRM_WINDOW, GRAPH, StateGraph, Transition
from activeupgrade.model.states import (
    Operation,
    OperationalState,
    OperatorAction,
    PartnerState,
    Request,
    SessionOutcome,
    Severity,
    UpgradeState,
)
from activeupgrade.store.db import Store
from activeupgrade.units import human_left

MAX_ATTEMPTS = 5
"""Retries of one request before Retry needs ``force`` (stops retry loops)."""

FAULT_PAUSE_ENV = "AU_FAULT_PAUSE"
"""Test hook: ``Request/step/begin|end``; the engine writes ``run/paused`` and waits there
(the crash test kills it with SIGKILL at that boundary)."""

LOADED = ("config", "loaded")
"""Store document: the configuration file loaded for the next session."""


def error_document(exc: AUError, step: str = "") -> dict[str, Any]:
    """An error as it is stored in the status and sent to clients."""
    return {**exc.to_dict(), "step": step}


class Engine:
    def __init__(
        self,
        instance: Instance,
        store: Store,
        bus: Bus,
        platform: Platform,
        graph: StateGraph = GRAPH,
    ) -> None:
        self.instance = instance
        self.store = store
        self.bus = bus
        self.platform = platform
        self.graph = graph
        self.log = ActivityLog(store, bus, instance.logs)
        self.journal = Journal(store)
        self._lock = threading.RLock()
        self._status = load_status(store)
        self._worker: threading.Thread | None = None
        self.cancel = CancelToken()
        """Cancels the running request at its next step boundary (an operator abort)."""
        self._abort_requested = False
        self._fault = os.environ.get(FAULT_PAUSE_ENV, "")
        self._check_config: str | None = None
        self._results: dict[str, dict[str, Any]] = {}
        self.unsaved_records: dict[str, dict[str, Any]] = {}
        """Ended operation records the store could not take (a full disk), by id."""
        self.progress = ProgressTracker()
        """Where the running request or operation is (``progress`` events)."""

    # -- reading ------------------------------------------------------------------------
    def status(self) -> Status:
        with self._lock:
            return Status.from_dict(self._status.to_dict())

    def conditions(self) -> frozenset[str]:
        """The conditions the graph's ``only_when`` actions need that hold now."""
        s = self._status
        if s.upgrade_state is UpgradeState.MERGE and confirm.is_open(self.store, s.session):
            return frozenset({CONFIRM_WINDOW})
        return frozenset()

    def allowed(self) -> list[OperatorAction]:
        s = self._status
        return self.graph.allowed(s.upgrade_state, s.operational_state, self.conditions())

    def allowed_operations(self) -> list[Operation]:
        s = self._status
        return self.graph.allowed_operations(s.upgrade_state, s.operational_state)

    def view(self) -> StatusView:
        """The status bar (SPEC §2.4) plus what the consoles need to draw their buttons."""
        s = self.status()
        partner, detail = (PartnerState.NONE, "")
        if s.upgrade_state.sides_exist:
            try:
                partner, detail = self.platform.partner()
            except AUError as exc:
                partner, detail = PartnerState.HUNG, exc.message
        facts: dict[str, Any] = {}
        try:
            facts = self.platform.facts()
        except AUError as exc:
            facts = {"duplex": False, "facts_error": exc.message}
        partner_text = partner.value
        if partner is PartnerState.HUNG:
            partner_text = f"Hung: {detail}" if detail else "Hung"
        allowed = self.graph.allowed(s.upgrade_state, s.operational_state, self.conditions())
        window = confirm.shown(self.store, s.session) if s.session else None
        if window is not None:
            facts = {**facts, "confirm_window": window}
        return StatusView.from_dict({
            **s.to_dict(),
            "partner_state": partner_text,
            "partner_detail": detail,
            "allowed_actions": [a.value for a in allowed],
            "allowed_operations": [o.value for o in self.graph.allowed_operations(
                s.upgrade_state, s.operational_state)],
            # The platform may say more than the graph (an abort that returns data to its
            # checkpoint says to when, and where the writes since are kept).
            "costs": {a.value: str((facts.get("costs") or {}).get(a.value)
                                   or self.graph.cost(a, s.upgrade_state)) for a in allowed},
            "duplex": bool(facts.get("duplex", False)),
            "facts": facts,
            "progress": self.progress.doc(),
            "max_attempts": MAX_ATTEMPTS,
            "format": VIEW_FORMAT,
        })

    def status_view(self) -> dict[str, Any]:
        """``view()`` as the JSON document the API sends."""
        return self.view().to_dict()

    def set_config(self, path: str) -> None:
        """Make ``path`` the configuration of the next session ("" for none)."""
        with self._lock:
            if self._status.session:
                raise StateError(
                    "a session is running: its configuration cannot change",
                    hint="Finish or abort the session first; it uses its staged copy.",
                )
            if self._status.operational_state is OperationalState.BUSY:
                raise StateError("a request is running: load the configuration when it "
                                 "ends", hint="Wait until `au status` shows Ready.")
            self.store.put_doc(*LOADED, path)
            self._set(config=path)

    def loaded_config(self) -> str:
        """The configuration file loaded for the next session ("" for none)."""
        doc = self.store.get_doc(*LOADED)
        return str(doc) if isinstance(doc, str) else ""

    # -- the one place state changes ----------------------------------------------------
    def _set(self, **changes: Any) -> None:
        """Change the status, save it and tell the listeners. When it cannot be saved (a
        full disk) the change still holds in memory and is announced, then the error is
        raised: the instance goes on with what the operator sees."""
        failed: AUError | None = None
        with self._lock:
            for k, v in changes.items():
                setattr(self._status, k, v)
            data = self._status.to_dict()
            try:
                save_status(self.store, self._status)
            except AUError as exc:
                failed = exc
        self.bus.publish(EventKind.STATUS, data)
        if failed is not None:
            raise failed

    def _ctx(self, request: Request | None = None) -> Context:
        s = self._status
        return Context(s.session, "", s.upgrade_state.value, (request or s.request).value)

    # -- start-up -----------------------------------------------------------------------
    def recover(self) -> None:
        """After a crash or restart: a Busy request becomes Broken, naming the step; an
        interrupted maintenance operation gives the instance back as it found it."""
        s = self.status()
        if s.operational_state is not OperationalState.BUSY:
            return
        if s.operation is not None:
            maintenance.recover(self, s)
            return
        open_step = self.journal.open_step(s.run)
        if open_step:
            step, reason = open_step, f"interrupted at step {open_step} of {s.request}"
        elif s.step:
            step, reason = s.step, f"interrupted after step {s.step} of {s.request}"
        else:
            step, reason = "", f"interrupted before the first step of {s.request}"
        self._set(operational_state=OperationalState.BROKEN, reason=reason, step=step,
                  sub_request=None, error=error_document(Interrupted(
                      reason, hint="Retry resumes it from that step, or Abort."), step))
        self.log.write(
            "engine.interrupted", f"{s.request} was {reason}; Retry resumes it, or Abort",
            severity=Severity.ERROR, ctx=self._ctx(),
            details={"step": step, "request": s.request.value},
        )

    # -- operator actions ---------------------------------------------------------------
    def submit(
        self, action: OperatorAction, *, config: str | None = None, force: bool = False,
        keep_data: bool = False,
    ) -> Status:
        """Validate ``action`` against the state graph and start it in the background.
        ``keep_data`` (abort only): an abort from Merge keeps the live data of checkpointed
        data volumes instead of returning them to their checkpoint."""
        with self._lock:
            s = self._status
            transition = self.graph.require(action, s.upgrade_state, s.operational_state,
                                            self.conditions())
            if keep_data and action is not OperatorAction.ABORT:
                raise StateError("keep_data is an option of abort only",
                                 hint=f"Run `au {action}` without --keep-data.")
            if action is OperatorAction.ABORT and s.session:
                # Recorded before the abort starts (and before an abort requested while
                # Busy): its steps read it, also when resumed after a crash.
                self.store.put_doc(ABORT_OPTIONS, s.session, {"keep_data": keep_data})
            if action is OperatorAction.ABORT and s.operational_state is OperationalState.BUSY:
                if s.operation is not None:
                    raise StateError(
                        f"a maintenance operation ({s.operation.get('operation')}) is "
                        "running: abort when it ends",
                        hint="Wait until `au status` shows Ready or Broken.")
                self._abort_requested = True
                self.cancel.cancel("the operator aborted the session")
                self.log.write(
                    "engine.abort.requested",
                    f"abort requested while {s.request} runs; it stops at its next step boundary",
                    severity=Severity.WARNING, ctx=self._ctx(),
                )
                return self.status()
            if action is OperatorAction.RETRY:
                if s.attempt >= MAX_ATTEMPTS and not force:
                    raise StateError(
                        f"{s.request} already failed {s.attempt} times",
                        hint="Fix the cause shown by `au log`, then `au retry --force`"
                        + (", or `au abort`" if OperatorAction.ABORT in self.allowed() else "")
                        + ".",
                    )
                self._start_retry()
            else:
                assert transition is not None
                if transition.starts_session:
                    # A session never starts on a configuration that cannot be read: it
                    # could then not even be aborted. The error goes back to the caller.
                    self.platform.idle_config(config if config is not None else s.config)
                self._start(transition, config)
            return self.status()

    def expire_confirmation(self, now: float | None = None) -> bool:
        """The daemon's look at the confirmation window after merge (``CONFIRM_POLL``, and at
        start): past its deadline in Merge with nothing running, the window is marked
        expired, the reason logged, and the abort from Merge started. True when it did."""
        with self._lock:
            s = self._status
            if (s.upgrade_state is not UpgradeState.MERGE
                    or s.operational_state is OperationalState.BUSY
                    or not confirm.is_open(self.store, s.session)):
                return False
            doc = confirm.window(self.store, s.session)
            now = time.time() if now is None else now
            if now < float(doc["deadline"]):
                return False
            confirm.end(self.store, s.session, "expired")
            late = now - float(doc["deadline"])
            self.log.write(
                "merge.confirm.expired",
                f"the merge was not confirmed within {human_left(float(doc['seconds']))} "
                f"(deadline {confirm.clock(float(doc['deadline']))}"
                + (f", {human_left(late)} ago: the daemon was not running" if late > 5
                   else "") + "): aborting from Merge automatically",
                severity=Severity.WARNING, ctx=self._ctx(), details=doc)
            self.submit(OperatorAction.ABORT)
            return True

    def cancel_work(self, reason: str = "the operator cancelled it") -> Status:
        """Stop the running maintenance operation or readiness check at its next check
        point (its failure is then ``Interrupted``; the instance keeps its state). A
        session's requests are not cancelled this way: Abort is their cancel."""
        with self._lock:
            s = self._status
            if s.operational_state is not OperationalState.BUSY:
                raise StateError("nothing is running to cancel",
                                 hint="`au status` shows the state.")
            if s.operation is None and s.action is not OperatorAction.CHECK:
                raise StateError(
                    f"{s.request} is a request of the session: it is not cancelled, it is "
                    "aborted",
                    hint="`au abort` (allowed now: "
                    + (", ".join(a.value for a in self.allowed()) or "none") + ").")
            what = str((s.operation or {}).get("operation") or s.request.value)
            self.cancel.cancel(reason)
            self.log.write("engine.cancel.requested",
                           f"cancel of {what} requested: it stops at its next check point",
                           severity=Severity.WARNING, ctx=self._ctx(),
                           details={"reason": reason, "operation": what})
            return self.status()

    def _start(self, t: Transition, config: str | None) -> None:
        s = self._status
        changes: dict[str, Any] = dict(
            action=t.action,
            pending=[st.request for st in t.stages],
            operational_state=OperationalState.BUSY,
            reason="",
            error=None,
            run="",
            attempt=0,
            step="",
        )
        if t.action is OperatorAction.ABORT:
            changes["abort_from"] = s.upgrade_state
        if t.starts_session:
            changes["session"] = new_id("s")
            changes["config"] = config if config is not None else s.config
            changes["abort_from"] = None
        # A check with its own file looks at that file once; the next session keeps the
        # loaded configuration.
        self._check_config = config if t.action is OperatorAction.CHECK else None
        with self._or_as_before():
            self._set(**changes)
            if t.starts_session:
                with self.store.transaction() as db:
                    db.execute(
                        "INSERT INTO sessions (id, started, config) VALUES (?, ?, ?)",
                        (self._status.session, time.time(), self._status.config),
                    )
        self._launch(lambda: self._work(t, True))

    @contextmanager
    def _or_as_before(self) -> Iterator[None]:
        """Starting work that cannot be recorded (a full disk) does not start it: the status
        is given back as it was, so that nothing waits for a worker that never ran."""
        before = Status.from_dict(self._status.to_dict())
        try:
            yield
        except AUError:
            with self._lock:
                self._status = before
                data = before.to_dict()
            self.bus.publish(EventKind.STATUS, data)
            raise

    def _start_retry(self) -> None:
        s = self._status
        if s.action is None or not s.pending:
            raise StateError("nothing to retry", hint="Run `au status` to see the state.")
        t = self.graph.transition(s.action)
        with self._or_as_before():
            self._set(operational_state=OperationalState.BUSY, reason="", error=None)
        self._launch(lambda: self._work(t, False))

    def _launch(self, work: Callable[[], None], name: str = "request") -> None:
        self.cancel = CancelToken()
        self._abort_requested = False
        self._worker = threading.Thread(target=work, name=name, daemon=True)
        self._worker.start()

    def wait(self, timeout: float | None = None) -> Status:
        """Block until the running request ends (tests and the in-process CLI)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return self.status()

    # -- maintenance operations -----------------------------------------------------------
    def submit_operation(self, operation: Operation, args: dict[str, Any]) -> dict[str, Any]:
        """Start a maintenance operation in the Busy slot; returns its record (its ``id``
        names it in ``GET /operations/ID`` and in the events)."""
        with self._lock:
            s = self._status
            self.graph.require_operation(operation, s.upgrade_state, s.operational_state)
            steps = self.platform.operation_steps(operation, args)  # bad arguments: refused
            with self._or_as_before():
                record = maintenance.begin(self, operation, args)
            self._launch(lambda: maintenance.work(self, record, steps), name=f"op-{operation}")
            return record

    # -- the worker ---------------------------------------------------------------------
    def _work(self, t: Transition, fresh: bool) -> None:
        try:
            self._run_transition(t, fresh)
        except Exception as exc:  # a bug, not a step failure: still never lose the state
            # An error of the hierarchy here came from the engine's own bookkeeping (a full
            # disk under the store): it keeps its class, hint and exit code.
            err = exc if isinstance(exc, AUError) else StepError(f"internal error: {exc}")
            try:
                self._set(
                    operational_state=OperationalState.BROKEN if t.breaks
                    else OperationalState.READY,
                    reason=err.message,
                    error=error_document(err),
                )
            except AUError:
                pass  # the status in memory is set: the instance is not wedged; saved later
            try:
                self.log.write(
                    "engine.failed" if isinstance(exc, AUError) else "engine.bug",
                    err.message, severity=Severity.CRITICAL, ctx=self._ctx(),
                    details={"traceback": traceback.format_exc()}
                    if not isinstance(exc, AUError) else err.to_dict(),
                )
            except AUError:
                pass
        if self._abort_requested:
            self._abort_requested = False
            if OperatorAction.ABORT in self.allowed():
                with self._lock:
                    self._start(self.graph.transition(OperatorAction.ABORT), None)

    def _config(self, fresh_session: bool) -> Config:
        s = self._status
        if s.action is OperatorAction.CHECK or not s.session:
            chosen = self._check_config if self._check_config is not None else s.config
            return self.platform.idle_config(chosen)
        return self.platform.session_config(s.session, s.config, stage=fresh_session)

    def _run_transition(self, t: Transition, fresh: bool) -> None:
        stages = self.graph.stages_from(t.action, self._status.pending[0])
        try:
            config = self._config(fresh and t.starts_session)
        except AUError as exc:
            first = stages[0]
            self._set(upgrade_state=first.state, request=first.request)
            node = self.log.write(
                "request.config", f"{first.request}: the configuration cannot be used",
                severity=Severity.ERROR, ctx=self._ctx(first.request),
            )
            self._fail(t, first.request, "configuration", exc, node)
            return
        for i, stage in enumerate(stages):
            resume = not fresh and i == 0
            ok = self._run_request(t, stage.request, stage.state, config, resume=resume)
            if not ok:
                return
            self._set(pending=[st.request for st in stages[i + 1 :]])
        ended = t.ends_session
        session = self._status.session
        changes: dict[str, Any] = dict(
            upgrade_state=t.target,
            operational_state=OperationalState.READY,
            step="",
            attempt=0,
            pending=[],
            abort_from=self._status.abort_from if not ended else None,
            session="" if ended else session,
        )
        if ended:
            # A one-off configuration (`au split --config F`, `--volume P`) was for that
            # session only: the next one uses the loaded configuration again.
            changes["config"] = self.loaded_config()
        self._set(**changes)
        self.progress.clear()
        self.log.write(
            "engine.state", f"{t.action} completed: upgrade state is {t.target}",
            severity=Severity.NOTICE, ctx=self._ctx(),
            details={"action": t.action.value, "state": t.target.value},
        )
        outcome = {OperatorAction.COMMIT: SessionOutcome.COMMITTED,
                   OperatorAction.ABORT: SessionOutcome.ABORTED}
        if t.action in outcome or ended:
            with self.store.transaction() as db:
                if t.action in outcome:
                    db.execute("UPDATE sessions SET outcome=? WHERE id=?",
                               (outcome[t.action].value, session))
                if ended:
                    db.execute("UPDATE sessions SET ended=? WHERE id=?", (time.time(), session))
        if ended:
            self.platform.end_session(session)

    def _run_request(
        self, t: Transition, request: Request, state: UpgradeState, config: Config, *,
        resume: bool
    ) -> bool:
        s = self._status
        run = s.run if resume and s.run else new_id("r")
        attempt = s.attempt + 1 if resume else 1
        self._set(upgrade_state=state, request=request, run=run, attempt=attempt, step="")
        steps = self.platform.steps(request, config)
        node = self.log.write(
            "request.start",
            f"{request} {'resumed (attempt ' + str(attempt) + ')' if resume else 'started'}",
            severity=Severity.NOTICE, ctx=self._ctx(request),
            details={"run": run, "attempt": attempt, "steps": [st.name for st in steps]},
        )
        started = time.monotonic()
        failure = run_steps(
            self, steps, Run(request, state, run, attempt, s.session, config, node),
            on_step=lambda step, index: self._on_step(request, step, index, len(steps)),
        )
        self._results.pop(run, None)
        if failure is not None:
            return self._fail(t, request, failure.step, failure.error, failure.node)
        self._set(sub_request=None)
        self.log.write(
            "request.done", f"{request} completed in {time.monotonic() - started:.2f}s",
            parent=node, severity=Severity.NOTICE, ctx=self._ctx(request),
        )
        return True

    def _on_step(self, request: Request, step: Step, index: int, total: int) -> None:
        self.progress.begin(request.value, step.name, index, total, step.description)
        self._set(step=step.name, sub_request=step.sub_request)
        self.bus.publish(EventKind.PROGRESS, self.progress.doc())

    def _fail(self, t: Transition, request: Request, step: str, exc: AUError,
              node: int) -> bool:
        reason = f"{step}: {exc.message}"
        doc = error_document(exc, step)
        if t.breaks:
            self._set(operational_state=OperationalState.BROKEN, reason=reason, step=step,
                      sub_request=None, error=doc)
        else:
            # The readiness check only reports: the instance stays as it was, with the
            # error shown (`au check` exits with its code).
            self._set(upgrade_state=t.target, operational_state=OperationalState.READY,
                      reason="", step="", sub_request=None, pending=[], attempt=0, error=doc)
        allowed = ", ".join(a.value for a in self.allowed())
        self.log.write(
            "request.broken" if t.breaks else "request.failed",
            f"{request} is Broken at step {reason}" if t.breaks else
            f"{request} failed at step {reason}; nothing was changed",
            parent=node, severity=Severity.ERROR, ctx=self._ctx(request),
            details={"step": step, "error": exc.to_dict(), "allowed_actions": allowed},
        )
        return False

    # -- what steps are given -------------------------------------------------------------
    def progress_reporter(
        self, request: Request, step: Step, index: int, total: int
    ) -> Callable[[float, str, dict[str, int]], None]:
        def report(percent: float, text: str, counts: dict[str, int]) -> None:
            self.progress.report(percent, text, counts)
            self.bus.publish(EventKind.PROGRESS, self.progress.doc())

        return report

    def output_publisher(self, run: Run) -> Callable[[str, str], None]:
        def publish(stream: str, line: str) -> None:
            self.bus.publish(EventKind.OUTPUT, {"run": run.run, "stream": stream, "line": line})

        return publish

    def results_of(self, run: str) -> dict[str, Any]:
        """What the steps of ``run`` reported so far (an operation's result)."""
        return self._results.setdefault(run, {})

    def fault_point(self, request: Request, step: str, phase: str) -> None:
        if not self._fault or self._fault != f"{request}/{step}/{phase}":
            return
        marker = self.instance.run / "paused"
        write_durably(marker, self._fault.encode())  # whole or absent: the test reads it
        # Wait here to be killed by the test; never continue past a requested crash point.
        while True:
            time.sleep(0.05)
            if not marker.exists():
                os.kill(os.getpid(), signal.SIGKILL)
