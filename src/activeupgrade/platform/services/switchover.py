"""Measuring a switchover: stop on the old software, switch, start on the new (SPEC §12).

The stop step records when it began and when the old application was gone; the start step
records when it began and when the new one answered its health check. The switch is what
ran between them (the volume switch, backup, startup restore: read from the step journal).
``gap`` is how long no instance was serving: from the old one's exit to the new one's first
healthy answer. Clients do not see it as failures: they wait in the held socket's backlog
(or in the keeper's relay). With an overlap switchover the old one exits after the new one
is healthy: the gap is 0 and ``stop_seconds`` is how long the old one took to finish.
"""

from __future__ import annotations

import time
from typing import Any

from activeupgrade.engine.journal import Journal
from activeupgrade.engine.steps import StepContext
from activeupgrade.model.states import Severity

NAMESPACE = "switchover"
"""Store namespace: key ``<session>:<phase>:<service>`` (phase ``merge`` or ``abort``)."""


def key(ctx: StepContext, phase: str, service: str) -> str:
    return f"{ctx.session}:{phase}:{service}"


def get(ctx: StepContext, phase: str, service: str) -> dict[str, Any]:
    doc = ctx.store.get_doc(NAMESPACE, key(ctx, phase, service))
    return dict(doc) if isinstance(doc, dict) else {}


def put(ctx: StepContext, phase: str, service: str, doc: dict[str, Any]) -> None:
    ctx.store.put_doc(NAMESPACE, key(ctx, phase, service), doc)


def steps_between(ctx: StepContext, begin: float, end: float) -> list[dict[str, Any]]:
    """Steps of this request that ran between ``begin`` and ``end`` (the switch)."""
    opened: dict[str, float] = {}
    found: list[dict[str, Any]] = []
    for mark in Journal(ctx.store).marks(ctx.session):
        if mark.request != ctx.request.value or mark.step.startswith("services."):
            continue
        if mark.phase == "begin":
            opened[mark.step] = mark.at
        elif mark.phase == "end" and mark.step in opened:
            started = opened.pop(mark.step)
            if started >= begin - 0.001 and mark.at <= end + 0.001:
                found.append({"step": mark.step, "seconds": round(mark.at - started, 4)})
    return found


def report(ctx: StepContext, phase: str, service: str) -> dict[str, Any]:
    """Log ``service.switchover`` with the measured durations; returns them."""
    doc = get(ctx, phase, service)
    exited = float(doc.get("old_exited") or 0.0)
    start_began = float(doc.get("start_began") or 0.0)
    healthy = float(doc.get("healthy_at") or time.time())
    stop_began = float(doc.get("stop_began") or exited)
    between = steps_between(ctx, exited, start_began) if exited else []
    figures = {
        "service": service,
        "phase": phase,
        "stop_seconds": round(max(0.0, exited - stop_began), 4),
        "switch_seconds": round(max(0.0, start_began - exited), 4) if exited else 0.0,
        "switch_steps": between,
        "start_seconds": round(max(0.0, healthy - start_began), 4),
        "gap_seconds": round(max(0.0, healthy - exited), 4) if exited else 0.0,
        "killed": bool(doc.get("killed")),
        "overlap": bool(doc.get("overlap")),
    }
    if figures["overlap"]:
        text = (f"{service}: the new instance was healthy in {figures['start_seconds']:.3f}s "
                f"beside the old one, which then finished in {figures['stop_seconds']:.3f}s "
                "(overlap: an instance served throughout)")
    else:
        text = (f"{service}: stopped in {figures['stop_seconds']:.3f}s, switch "
                f"{figures['switch_seconds']:.3f}s, healthy in {figures['start_seconds']:.3f}s "
                f"(no instance serving for {figures['gap_seconds']:.3f}s; clients waited in "
                "the held socket)")
    ctx.write("service.switchover", text, severity=Severity.NOTICE, details=figures)
    ctx.results[f"switchover:{service}"] = figures
    return figures
