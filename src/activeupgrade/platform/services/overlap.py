"""Overlap switchover (``switchover = "overlap"``): the new version serves before the old
one is told to finish.

For daemons that share one held socket (``listen-fds`` and ``nginx`` handovers): the keeper
starts the new version beside the running one; both accept on the same socket for a
moment; once the new one is healthy the old one gets its stop signal (nginx: SIGQUIT, a
graceful stop that finishes requests in flight and closes idle keep-alive connections).
There is no moment without a serving instance.
"""

from __future__ import annotations

from typing import Any

from activeupgrade.config.model import ServiceSpec, Switchover
from activeupgrade.engine.steps import StepContext
from activeupgrade.platform.services import switchover
from activeupgrade.platform.services.backend import Backend, Check, StartResult
from activeupgrade.platform.services.supervisor import Supervisor


def overlaps(backend: Backend, spec: ServiceSpec) -> bool:
    """Whether the new version starts beside the old one (the supervisor's keeper can)."""
    return isinstance(backend, Supervisor) and spec.switchover is Switchover.OVERLAP


def start_beside(ctx: StepContext, spec: ServiceSpec, backend: Supervisor, doc: dict[
    str, Any], phase: str, *, check: Check | None) -> StartResult:
    """Overlap: the new version starts beside the old one; once healthy, the old retires."""
    current = backend.status(spec).pid
    rerun = bool(doc.get("new_pid")) and current == int(doc["new_pid"])
    def record(pid: int) -> None:
        doc.update(new_pid=pid)
        switchover.put(ctx, phase, spec.name, doc)

    result = backend.start(spec, check=check, overlap=not rerun, started=record)
    record(result.pid)
    retired = backend.retire(spec)
    doc.update(stop_began=retired.began, old_exited=retired.exited_at, killed=retired.killed)
    switchover.put(ctx, phase, spec.name, doc)
    ctx.write("service.retired",
              f"{spec.name}: the old version got {spec.stop_signal} after the new one was "
              f"healthy and finished in {retired.seconds:.3f}s"
              + (" (SIGKILL after the grace period)" if retired.killed else ""),
              details={"killed": retired.killed, "seconds": round(retired.seconds, 4)})
    return result


