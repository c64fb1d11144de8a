"""No outage from a crash of the tool: an interrupted switch is resumed at daemon start.

ExecuteMerge and Abort are the requests that stop and start the applications. If the
daemon dies inside one of them (after a stop, before the matching start), clients wait in
the held sockets, but nobody would start the applications until an operator ran
``au retry``. At start-up the daemon therefore resumes such a request by itself, from the
step it was interrupted at: every service step is idempotent, so the resumed ExecuteMerge
completes the switch (and its health gate rolls back to the original software if the new
version is not healthy), a resumed Abort completes the way back. The activity log says
so (``engine.resume``); the status then shows the outcome as for any request.

Only a crash is resumed (the error is ``Interrupted``), only when the switchover records
show an application of the session stopped and not started again (``was_running`` without
``healthy_at``: otherwise nothing waits and the operator decides), and only while the
request has attempts left, so a request that crashes the daemon each time does not loop.
"""

from __future__ import annotations

from activeupgrade.engine.status import Status
from activeupgrade.model.states import OperationalState, Request
from activeupgrade.platform.services import switchover
from activeupgrade.store.db import Store

SWITCHING = (Request.EXECUTE_MERGE, Request.ABORT)
"""The requests that stop and start applications."""


def stopped_services(store: Store, session: str) -> list[str]:
    """Services the session's merge or abort stopped (or, overlapping, began to replace)
    and has not seen healthy again."""
    out = []
    for key, doc in store.docs(switchover.NAMESPACE).items():
        owner, _, rest = key.partition(":")
        if owner == session and isinstance(doc, dict) and doc.get("was_running") \
                and not doc.get("healthy_at"):
            out.append(rest.partition(":")[2])
    return out


def should_resume(status: Status, store: Store, max_attempts: int) -> bool:
    """Whether ``status`` is a switch interrupted by a crash that left an application
    stopped, and may be resumed."""
    return (status.operational_state is OperationalState.BROKEN
            and status.request in SWITCHING
            and (status.error or {}).get("error") == "Interrupted"
            and status.attempt < max_attempts
            and bool(stopped_services(store, status.session)))
