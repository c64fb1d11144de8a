"""Application service steps of the requests (SPEC §3, §5).

ExecuteSplit: save each service's startup type and disable it on the Upgrade Side.
ExecuteMerge: stop on Production (sockets stay held), [volume switch], start on the upgraded
software and wait until healthy, restore the startup type; the switchover is measured.
With ``switchover = "overlap"`` the stop is deferred: the new version starts beside the old
one, and the old one gets its stop signal once the new one is healthy. With ``"late-stop"``
the old one serves through the switch and is stopped by the start step, right before the
new one starts. A new version that
is not healthy in time rolls every application back to the original software (``gate.py``).
Abort: only when the live paths were switched (or the applications were stopped by an
interrupted merge), stop, [switch back], start again.

Every step is idempotent: what it did is recorded in the store before and after, so a
rerun after a crash at any point neither loses a "was running" nor starts twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from activeupgrade.config.model import Config, ServiceSpec, Switchover
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import ServiceError
from activeupgrade.model.states import Request, Severity, Side
from activeupgrade.platform.services import gate, switchover
from activeupgrade.platform.services.backend import Backend
from activeupgrade.platform.services.backends import backend_for
from activeupgrade.platform.services.overlap import overlaps, start_beside
from activeupgrade.platform.services.supervisor import Supervisor
from activeupgrade.platform.volumes import checkpoint, registry

SAVED = "startup-saved"
"""Store namespace: the startup type saved at split, key ``<session>:<service>``."""


def _backend(ctx: StepContext, spec: ServiceSpec) -> Backend:
    return backend_for(spec, ctx.instance, ctx.store)


def _per_service(
    cfg: Config, prefix: str, run: Callable[[StepContext, ServiceSpec], None], *,
    side: Side = Side.PRODUCTION, reverse: bool = False, what: str, timeout: Callable[
        [ServiceSpec], float],
) -> list[Step]:
    services = list(reversed(cfg.services)) if reverse else list(cfg.services)

    def bind(spec: ServiceSpec) -> Callable[[StepContext], None]:
        return lambda ctx: run(ctx, spec)

    return [
        Step(f"services.{prefix}:{s.name}", bind(s), timeout=timeout(s),
             description=f"{what} {s.name}", side=side)
        for s in services
    ]


def _short(spec: ServiceSpec) -> float:
    return 180.0


def _stop_time(spec: ServiceSpec) -> float:
    return spec.stop_grace + 90.0


def _start_time(spec: ServiceSpec) -> float:
    return spec.start_timeout + 90.0


# -- split ----------------------------------------------------------------------------------
def _disable(ctx: StepContext, spec: ServiceSpec) -> None:
    backend = _backend(ctx, spec)
    key = f"{ctx.session}:{spec.name}"
    saved = ctx.store.get_doc(SAVED, key)
    if not isinstance(saved, dict):
        # Saved once: a rerun must not read back the "disabled" it set itself.
        saved = {"enabled": backend.is_enabled(spec, Side.UPGRADE), "backend": backend.kind}
        ctx.store.put_doc(SAVED, key, saved)
    backend.set_enabled(spec, Side.UPGRADE, False)
    ctx.results.update(service=spec.name, saved_startup=saved["enabled"])
    ctx.write("service.startup.disabled",
              f"{spec.name}: startup type saved ({'enabled' if saved['enabled'] else 'disabled'})"
              " and disabled on the Upgrade Side", side=Side.UPGRADE, details=dict(saved))


def disable_on_upgrade_side(cfg: Config) -> list[Step]:
    return _per_service(cfg, "disable-upgrade", _disable, side=Side.UPGRADE,
                        what="save startup type and disable on the Upgrade Side", timeout=_short)


# -- stop / start with measurement ----------------------------------------------------------
def _stop(ctx: StepContext, spec: ServiceSpec, phase: str) -> None:
    backend = _backend(ctx, spec)
    doc = switchover.get(ctx, phase, spec.name)
    if "was_running" not in doc:
        # Recorded before stopping: a crash right after the stop must still restart it.
        doc = {"was_running": backend.status(spec).running, "stop_began": time.time(),
               "overlap": overlaps(backend, spec),
               "late": spec.switchover is Switchover.LATE_STOP}
        switchover.put(ctx, phase, spec.name, doc)
    if doc.get("overlap") or doc.get("late"):
        ctx.results.update(service=spec.name, was_running=doc["was_running"],
                           switchover=spec.switchover.value)
        ctx.write("service.stop.deferred",
                  f"{spec.name} keeps serving: it gets its stop signal "
                  + ("once the new version is healthy (overlap)" if doc.get("overlap") else
                     "right before the new version starts (late-stop)"),
                  details={"was_running": doc["was_running"]})
        return
    result = backend.stop(spec)
    if not result.already or "old_exited" not in doc:
        doc.update(old_exited=result.exited_at if not result.already else time.time(),
                   killed=result.killed)
        if not result.already:
            doc["stop_began"] = result.began
        switchover.put(ctx, phase, spec.name, doc)
    ctx.results.update(service=spec.name, was_running=doc["was_running"],
                       stop_seconds=round(result.seconds, 4), killed=result.killed)
    ctx.write("service.stopped",
              f"{spec.name} stopped in {result.seconds:.3f}s"
              + (" (SIGKILL after the grace period)" if result.killed else "")
              + (" (was not running)" if not doc["was_running"] else "")
              + ("; listening sockets held" if spec.sockets else ""),
              details={"was_running": doc["was_running"], "killed": result.killed})


def _start(ctx: StepContext, spec: ServiceSpec, phases: tuple[str, ...]) -> None:
    docs = [switchover.get(ctx, p, spec.name) for p in phases]
    wanted = [(p, d) for p, d in zip(phases, docs, strict=True) if d.get("was_running")]
    if not wanted:
        ctx.write("service.start.skipped", f"{spec.name} was not running before: not started",
                  severity=Severity.DEBUG)
        return
    phase, doc = wanted[0]
    if phase == "merge" and ctx.request is Request.EXECUTE_MERGE:
        gate.refuse_after_rollback(ctx)
    backend = _backend(ctx, spec)
    beside = bool(doc.get("overlap")) and phase == phases[0] and isinstance(backend, Supervisor)
    try:
        if beside:
            assert isinstance(backend, Supervisor)
            result = start_beside(ctx, spec, backend, doc, phase, check=ctx.check)
        else:
            if doc.get("late") and phase == phases[0] and "old_exited" not in doc:
                _late_stop(ctx, spec, backend, doc, phase)
            result = backend.start(spec, check=ctx.check)
    except ServiceError as exc:
        if ctx.request is not Request.EXECUTE_MERGE:
            raise
        gate.roll_back(ctx, spec, exc)
        raise
    if "healthy_at" not in doc or not result.already:
        doc.update(start_began=result.began, healthy_at=result.healthy_at, pid=result.pid)
        switchover.put(ctx, phase, spec.name, doc)
    ctx.write("service.started", f"{spec.name} started and healthy in {result.seconds:.3f}s "
              f"({result.detail})", details={"pid": result.pid, "already": result.already})
    switchover.report(ctx, phase, spec.name)


def _late_stop(ctx: StepContext, spec: ServiceSpec, backend: Backend, doc: dict[str, Any],
               phase: str) -> None:
    """late-stop: the old version served through the switch; it stops now, just before the
    new one starts (recorded, so that a rerun does not stop the new one)."""
    stopped = backend.stop(spec)
    doc.update(stop_began=stopped.began, old_exited=stopped.exited_at, killed=stopped.killed)
    switchover.put(ctx, phase, spec.name, doc)
    ctx.write("service.stopped", f"{spec.name} stopped in {stopped.seconds:.3f}s, after the "
              "switch (late-stop)" + (" (SIGKILL after the grace period)" if stopped.killed
                                      else ""),
              details={"was_running": doc["was_running"], "killed": stopped.killed})


def stop_production(cfg: Config) -> list[Step]:
    return _per_service(cfg, "stop", lambda c, s: _stop(c, s, "merge"), reverse=True,
                        what="stop on Production (sockets held)", timeout=_stop_time)


def _restore(ctx: StepContext, spec: ServiceSpec) -> None:
    saved = ctx.store.get_doc(SAVED, f"{ctx.session}:{spec.name}")
    enabled = bool(saved["enabled"]) if isinstance(saved, dict) else spec.enabled
    _backend(ctx, spec).restore_after_switch(spec, enabled)
    ctx.results.update(service=spec.name, startup="enabled" if enabled else "disabled")
    ctx.write("service.startup.restored",
              f"{spec.name}: startup type restored ({'enabled' if enabled else 'disabled'})")


def restore_startup(cfg: Config) -> list[Step]:
    return _per_service(cfg, "restore-startup", _restore, what="restore startup type",
                        timeout=_short)


def start_upgraded(cfg: Config) -> list[Step]:
    return _per_service(cfg, "start", lambda c, s: _start(c, s, ("merge",)),
                        what="start on the upgraded software", timeout=_start_time)


# -- abort ----------------------------------------------------------------------------------
def switched(ctx: StepContext) -> bool:
    """Whether the live paths point at the upgraded replicas (the volumes part knows)."""
    return registry.merged(ctx.store)


def _abort_stop(ctx: StepContext, spec: ServiceSpec) -> None:
    # Data returning to its checkpoint is never changed under a running application.
    if (not switched(ctx) and not checkpoint.restoring(ctx)
            and "was_running" not in switchover.get(ctx, "abort", spec.name)):
        ctx.write("service.abort.nothing",
                  f"{spec.name} keeps running: the live paths were not switched",
                  severity=Severity.DEBUG)
        return
    _stop(ctx, spec, "abort")


def _abort_start(ctx: StepContext, spec: ServiceSpec) -> None:
    # Started again if the abort stopped it, or if an interrupted merge had stopped it.
    _start(ctx, spec, ("abort", "merge"))
    backend = _backend(ctx, spec)
    if backend.kind == "supervisor":
        saved = ctx.store.get_doc(SAVED, f"{ctx.session}:{spec.name}")
        backend.restore_after_switch(
            spec, bool(saved["enabled"]) if isinstance(saved, dict) else spec.enabled)


def stop_for_abort(cfg: Config) -> list[Step]:
    return _per_service(cfg, "abort-stop", _abort_stop, reverse=True,
                        what="stop the upgraded application (abort from merge)",
                        timeout=_stop_time)


def start_for_abort(cfg: Config) -> list[Step]:
    return _per_service(cfg, "abort-start", _abort_start,
                        what="start on the original software", timeout=_start_time)
