"""Maintenance operations in the engine's one Busy slot (the rules are data in
``model/graph.py``; the platform supplies each operation's steps).

An operation is recorded (store namespace ``operations``, one document per run: its
operation, arguments, state, result or error), journaled step by step like a request, and
logged under an ``operation.start`` entry. While it runs the status is Busy and shows the
operation's request (``Adopt``, ``Exec``, ``Start`` …); when it ends, the operational
state it found is given back — a Broken request stays Broken with its reason, so that an
operator can repair the cause with an operation and then Retry. An operation never
breaks the instance: its failure is its own result (the error keeps its class, hint and
exit code). After a crash of the daemon the interrupted operation is recorded as such and
the instance is given back the same way.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from activeupgrade.bus import EventKind
from activeupgrade.config.model import Config
from activeupgrade.engine.runner import Run, run_steps
from activeupgrade.engine.status import Status, new_id
from activeupgrade.engine.steps import Step
from activeupgrade.errors import AUError, Interrupted, StepError
from activeupgrade.model.states import Operation, OperationalState, Severity

if TYPE_CHECKING:
    from activeupgrade.engine.engine import Engine

NAMESPACE = "operations"
"""Store namespace of operation records, by id."""
KEPT = 200
"""Operation records kept (the oldest go first)."""

_RESTORED = ("operational_state", "request", "step", "reason", "sub_request", "error")
"""Status fields an operation gives back as it found them."""


def record(engine: Engine, op_id: str) -> dict[str, Any] | None:
    """The record of operation ``op_id`` (None when unknown)."""
    if op_id in engine.unsaved_records:
        return dict(engine.unsaved_records[op_id])
    doc = engine.store.get_doc(NAMESPACE, op_id)
    return dict(doc) if isinstance(doc, dict) else None


def recent(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """The newest operation records first."""
    docs = [d for d in engine.store.docs(NAMESPACE).values() if isinstance(d, dict)]
    docs.sort(key=lambda d: float(d.get("started", 0.0)), reverse=True)
    return docs[:limit]


def begin(engine: Engine, operation: Operation, args: dict[str, Any]) -> dict[str, Any]:
    """Take the Busy slot for ``operation`` (called under the engine's lock)."""
    s = engine._status
    op_id = new_id("o")
    before = Status.from_dict(s.to_dict())
    saved = {k: v for k, v in before.to_dict().items() if k in _RESTORED}
    rec = {"id": op_id, "operation": operation.value, "args": args, "state": "running",
           "started": time.time(), "ended": None, "result": {}, "error": None,
           "upgrade_state": s.upgrade_state.value, "session": s.session}
    engine.store.put_doc(NAMESPACE, op_id, rec)
    _trim(engine)
    engine._set(operational_state=OperationalState.BUSY, request=operation.request,
                step="", sub_request=None,
                operation={"id": op_id, "operation": operation.value, "args": args,
                           "before": saved})
    return rec


def work(engine: Engine, rec: dict[str, Any], steps: list[Step]) -> None:
    """Run the operation's steps in the worker thread and give the slot back."""
    operation = Operation(rec["operation"])
    s = engine.status()
    node = engine.log.write(
        "operation.start", f"{operation} started" + _args_text(rec["args"]),
        severity=Severity.NOTICE, ctx=engine._ctx(operation.request),
        details={"operation": operation.value, "id": rec["id"], "args": rec["args"],
                 "steps": [st.name for st in steps]},
    )
    started = time.monotonic()
    error: AUError | None = None
    failed_step = ""
    try:
        # The steps resolve what they need themselves (a service's spec, a volume).
        config = Config()
        failure = run_steps(
            engine, steps,
            Run(operation.request, s.upgrade_state, rec["id"], 1, s.session, config, node),
            on_step=lambda step, index: _on_step(engine, operation, step, index, len(steps)),
        )
        if failure is not None:
            error, failed_step = failure.error, failure.step
    except AUError as exc:
        error = exc
    except Exception as exc:  # a bug: still give the instance back
        error = StepError(f"internal error: {type(exc).__name__}: {exc}")
    result = engine.results_of(rec["id"])
    engine._results.pop(rec["id"], None)
    seconds = round(time.monotonic() - started, 3)
    rec = dict(rec, state="failed" if error else "done", ended=time.time(), result=result,
               error=({**error.to_dict(), "step": failed_step} if error else None),
               seconds=seconds)
    try:
        _record_end(engine, operation, rec, node, error, failed_step, seconds, result)
    except AUError:
        # The store cannot take the end (a full disk): keep it in memory, and give the
        # instance back all the same, so that nothing waits for an operation that ended.
        engine.unsaved_records[rec["id"]] = rec
    try:
        _give_back(engine, rec)
    except AUError:
        pass  # the status is given back in memory; it is saved with the next change


def _record_end(engine: Engine, operation: Operation, rec: dict[str, Any], node: int,
                error: AUError | None, failed_step: str, seconds: float,
                result: dict[str, Any]) -> None:
    engine.store.put_doc(NAMESPACE, rec["id"], rec)
    engine.unsaved_records.pop(rec["id"], None)
    if error is None:
        engine.log.write("operation.done", f"{operation} done in {seconds:.2f}s", parent=node,
                         severity=Severity.NOTICE, ctx=engine._ctx(operation.request),
                         details={"id": rec["id"], "result": _short(result)})
    else:
        engine.log.write("operation.failed",
                         f"{operation} failed" + (f" at {failed_step}" if failed_step else "")
                         + f": {error.message}", parent=node, severity=Severity.ERROR,
                         ctx=engine._ctx(operation.request),
                         details={"id": rec["id"], "error": error.to_dict()})


def recover(engine: Engine, s: Status) -> None:
    """At daemon start: an operation that was running when the daemon died."""
    op = s.operation or {}
    op_id = str(op.get("id", ""))
    step = engine.journal.open_step(op_id)
    exc = Interrupted(f"{op.get('operation')} was interrupted"
                      + (f" at step {step}" if step else "") + " (the daemon stopped)",
                      hint="Run it again: every operation resumes or starts over safely.")
    rec = record(engine, op_id) or {"id": op_id, "operation": op.get("operation"),
                                    "args": op.get("args", {})}
    rec.update(state="interrupted", ended=time.time(), error={**exc.to_dict(), "step": step})
    engine.store.put_doc(NAMESPACE, op_id, rec)
    engine.log.write("operation.interrupted", exc.message, severity=Severity.WARNING,
                     ctx=engine._ctx(), details={"id": op_id, "step": step})
    _give_back(engine, rec)


def _give_back(engine: Engine, rec: dict[str, Any]) -> None:
    before = dict((engine._status.operation or {}).get("before") or {})
    restored = Status.from_dict({**engine._status.to_dict(), **before})
    engine.progress.clear()
    engine._set(**{k: getattr(restored, k) for k in _RESTORED}, operation=None,
                last_operation={"id": rec["id"], "operation": rec.get("operation"),
                                "outcome": rec.get("state")})


def _on_step(engine: Engine, operation: Operation, step: Step, index: int, total: int) -> None:
    engine.progress.begin(operation.request.value, step.name, index, total, step.description)
    engine._set(step=step.name)
    engine.bus.publish(EventKind.PROGRESS, engine.progress.doc())


def _trim(engine: Engine) -> None:
    docs = recent(engine, limit=10_000)
    for old in docs[KEPT:]:
        engine.store.delete_doc(NAMESPACE, str(old.get("id")))


def _args_text(args: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in args.items() if k not in ("env",))
    return f" ({shown})" if shown else ""


def _short(result: dict[str, Any]) -> dict[str, Any]:
    """The result without bulky output (which is in the log already)."""
    return {k: v for k, v in result.items() if k not in ("stdout", "stderr")}
