"""The health gate at merge: a new version not healthy in time rolls the applications back.

When a service does not become healthy on the upgraded software within its
``start_timeout`` (or exits first), ExecuteMerge does not leave a sick version serving:

1. the failed service's new instance is stopped (overlap: the old one, never stopped, is
   current again); services already started on the upgraded software are stopped too
   (overlap ones keep serving until their replacement is healthy);
2. the system volumes' live paths go back to the original replicas;
3. every application that was running before the merge is started again on the original
   software (overlap ones beside the upgraded instance, which then retires).

The request then fails (Broken) with the reason; the store records the rollback so that a
Retry does not start the upgraded software on the original replicas: Abort is what ends
the session from there (it finds the applications already on the original software).
"""

from __future__ import annotations

from activeupgrade.config.model import ServiceSpec
from activeupgrade.engine.steps import StepContext
from activeupgrade.errors import ServiceError
from activeupgrade.model.states import Severity
from activeupgrade.platform.services import switchover
from activeupgrade.platform.services.backends import backend_for
from activeupgrade.platform.services.overlap import overlaps, start_beside
from activeupgrade.platform.services.supervisor import Supervisor
from activeupgrade.platform.volumes import steps as volumes

ROLLBACK = "rollback"
"""Store namespace: key ``<session>``, the rollback done by the health gate."""


def refuse_after_rollback(ctx: StepContext) -> None:
    """A Retry of ExecuteMerge after a rollback would serve the upgrade from the original
    replicas: refused with what to do instead."""
    doc = ctx.store.get_doc(ROLLBACK, ctx.session)
    if isinstance(doc, dict):
        raise ServiceError(
            f"the applications were rolled back to the original software ({doc['reason']})",
            hint="`au abort` ends the session on the original software (the applications "
            "already run there).",
        )


def roll_back(ctx: StepContext, failed: ServiceSpec, error: ServiceError) -> None:
    """Move every application back to the original software, then record why."""
    services = list(ctx.config.services)
    index = next(i for i, s in enumerate(services) if s.name == failed.name)
    reason = f"{failed.name} was not healthy on the upgraded software: {error.message}"
    ctx.write("service.rollback.begin", f"health gate: {reason}; rolling the applications "
              "back to the original software", severity=Severity.WARNING)
    docs = {s.name: switchover.get(ctx, "merge", s.name) for s in services}
    # 1. Nothing keeps running on the upgraded software that cannot keep serving meanwhile.
    for i, spec in reversed(list(enumerate(services))):
        backend = backend_for(spec, ctx.instance, ctx.store)
        if i == index:
            if overlaps(backend, spec) and isinstance(backend, Supervisor):
                backend.rollback(spec)  # the old version never stopped: it serves again
            else:
                backend.stop(spec)
        elif i < index and not overlaps(backend, spec):
            backend.stop(spec)
    # 2. The live paths show the original software again.
    volumes.switch_back(ctx)
    # 3. What ran before the merge runs again, on the original software.
    restarted = []
    for i, spec in enumerate(services):
        if not docs[spec.name].get("was_running"):
            continue
        backend = backend_for(spec, ctx.instance, ctx.store)
        if i < index and overlaps(backend, spec) and isinstance(backend, Supervisor):
            doc = {**docs[spec.name], "new_pid": 0}
            start_beside(ctx, spec, backend, doc, "rollback", check=None)
        else:
            backend.start(spec)
        restarted.append(spec.name)
    ctx.store.put_doc(ROLLBACK, ctx.session, {"reason": reason, "service": failed.name,
                                              "restarted": restarted})
    ctx.write("service.rollback.done",
              f"health gate: {', '.join(restarted) or 'no application'} serving on the "
              "original software again", severity=Severity.WARNING,
              details={"reason": reason, "restarted": restarted})
    error.message = f"{reason}; the applications were rolled back to the original software"
    error.hint = ("Read the service's log (`au service status NAME` shows where); `au abort` "
                  "ends the session on the original software.")
