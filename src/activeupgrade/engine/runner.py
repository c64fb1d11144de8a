"""Running the ordered steps of one request or maintenance operation, each journaled.

The engine decides what to run (``engine.py``: operator actions and their requests;
``maintenance.py``: maintenance operations); this module runs a list of steps the one way:
journal ``begin`` before a step, ``end`` or ``fail`` after it, skip the steps a resumed run
already ended, honour cancellation and the fault hook, log each step's start and end, and
turn an unexpected exception into a ``StepError`` (with the traceback logged).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from activeupgrade.activity import Context
from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import AUError, Interrupted, StepError
from activeupgrade.model.states import Request, Severity, UpgradeState

if TYPE_CHECKING:
    from activeupgrade.engine.engine import Engine


@dataclass(frozen=True)
class Run:
    """One run of a list of steps: what the journal and the log record it under."""

    request: Request
    state: UpgradeState
    run: str
    attempt: int
    session: str
    config: Config
    node: int
    """The activity log entry of the request (or operation): its steps log under it."""


@dataclass(frozen=True)
class Failure:
    """Where and why a run of steps stopped."""

    step: str
    error: AUError
    node: int
    """The log entry of the failed step (the request's entry if none had started)."""


def run_steps(engine: Engine, steps: list[Step], run: Run, *,
              on_step: Callable[[Step, int], None]) -> Failure | None:
    """Run ``steps`` in order; None when all ended, else the failure. ``on_step`` is told
    when a step starts (the engine shows it in the status and the progress)."""
    done = engine.journal.completed(run.run)
    ctx_log = Context(run.session, "", run.state.value, run.request.value)
    for index, step in enumerate(steps):
        if step.name in done and not step.rerun:
            engine.log.write("step.skip", f"{step.name}: already done in this run",
                             parent=run.node, severity=Severity.DEBUG, ctx=ctx_log)
            continue
        if engine.cancel.cancelled:
            return Failure(step.name, Interrupted(engine.cancel.reason), run.node)
        # The status, the journal's begin mark and the log entry in one commit: the
        # bookkeeping between two steps (between a service's stop and its start, say)
        # waits for the disk once per phase, not once per write.
        with engine.store.batch():
            on_step(step, index)
            engine.journal.mark(run.session, run.run, run.request.value, step.name, "begin",
                                run.attempt)
            step_node = engine.log.write(
                "step.start", step.description or step.name, parent=run.node, ctx=ctx_log,
                details={"step": step.name}, side=step.side.value,
            )
        engine.fault_point(run.request, step.name, "begin")
        ctx = StepContext(
            instance=engine.instance, store=engine.store, log=engine.log, config=run.config,
            session=run.session, request=run.request, state=run.state,
            abort_from=engine.status().abort_from, attempt=run.attempt, step=step.name,
            node=step_node, deadline=time.monotonic() + step.timeout, cancel=engine.cancel,
            side=step.side, progress_cb=engine.progress_reporter(run.request, step, index,
                                                                 len(steps)),
            sub_request=step.sub_request, output_cb=engine.output_publisher(run),
        )
        t0 = time.monotonic()
        try:
            step.run(ctx)
        except AUError as exc:
            engine.journal.mark(run.session, run.run, run.request.value, step.name, "fail",
                                run.attempt, exc.message)
            return Failure(step.name, exc, step_node)
        except Exception as exc:
            err = StepError(f"{type(exc).__name__}: {exc}")
            engine.journal.mark(run.session, run.run, run.request.value, step.name, "fail",
                                run.attempt, err.message)
            engine.log.write(
                "step.bug", f"unexpected error in {step.name}", parent=step_node,
                severity=Severity.CRITICAL, ctx=ctx_log,
                details={"traceback": traceback.format_exc()},
            )
            return Failure(step.name, err, step_node)
        took = time.monotonic() - t0
        with engine.store.batch():
            engine.journal.mark(run.session, run.run, run.request.value, step.name, "end",
                                run.attempt)
            engine.log.write(
                "step.done", f"{step.name} done in {took:.3f}s", parent=step_node,
                ctx=ctx_log, details={"step": step.name, "seconds": round(took, 4),
                                      **ctx.results},
                side=step.side.value,
            )
        run_results = engine.results_of(run.run)
        run_results.update(ctx.results)
        engine.fault_point(run.request, step.name, "end")
    return None
