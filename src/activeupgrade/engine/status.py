"""The engine status document: what ``au status`` shows, stored durably in ``status``."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from activeupgrade.model.states import (
    OperationalState,
    OperatorAction,
    PartnerState,
    Request,
    UpgradeState,
)
from activeupgrade.store.db import Store

STATUS_FORMAT = 2


def new_id(prefix: str) -> str:
    """A new id for a session (``s…``), a request run (``r…``) or an operation (``o…``)."""
    return f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class Status:
    upgrade_state: UpgradeState = UpgradeState.IDLE
    operational_state: OperationalState = OperationalState.READY
    request: Request = Request.IDLE
    """The running request, or the last one that ran."""
    step: str = ""
    """The running step, or the failed one when Broken."""
    sub_request: Request | None = None
    """The phase of the running request (Start, Stop or Backup) while one runs."""
    action: OperatorAction | None = None
    """The operator action being executed (absent when none ran yet)."""
    pending: list[Request] = field(default_factory=list)
    """Requests of the action still to complete, the current one first."""
    run: str = ""
    """Id of the current request run (kept across retries)."""
    attempt: int = 0
    reason: str = ""
    """Why the request is Broken."""
    error: dict[str, Any] | None = None
    """The error that broke the request (or failed the last check or operation) as a
    document: ``error`` (its class), ``message``, ``hint``, ``exit_code``, ``details``,
    ``step``. Clients raise the same class from it, so its hint and exit code survive."""
    operation: dict[str, Any] | None = None
    """The maintenance operation running now: ``id``, ``operation``, ``args`` and
    ``before`` (the operational fields it restores when it ends)."""
    last_operation: dict[str, Any] | None = None
    """The last maintenance operation that ended: ``id``, ``operation``, ``outcome``."""
    session: str = ""
    abort_from: UpgradeState | None = None
    partner_state: PartnerState = PartnerState.NONE
    partner_detail: str = ""
    config: str = ""
    """Configuration file of the current session (or loaded for the next)."""
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in list(d.items()):
            if hasattr(v, "value"):
                d[k] = v.value
        d["pending"] = [r.value for r in self.pending]
        d["format"] = STATUS_FORMAT
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Status:
        return cls(
            upgrade_state=UpgradeState(d["upgrade_state"]),
            operational_state=OperationalState(d["operational_state"]),
            request=Request(d["request"]),
            step=d.get("step", ""),
            sub_request=Request(d["sub_request"]) if d.get("sub_request") else None,
            action=OperatorAction(d["action"]) if d.get("action") else None,
            pending=[Request(r) for r in d.get("pending", [])],
            run=d.get("run", ""),
            attempt=int(d.get("attempt", 0)),
            reason=d.get("reason", ""),
            error=dict(d["error"]) if isinstance(d.get("error"), dict) else None,
            operation=dict(d["operation"]) if isinstance(d.get("operation"), dict) else None,
            last_operation=(dict(d["last_operation"])
                            if isinstance(d.get("last_operation"), dict) else None),
            session=d.get("session", ""),
            abort_from=UpgradeState(d["abort_from"]) if d.get("abort_from") else None,
            partner_state=PartnerState(d.get("partner_state", PartnerState.NONE.value)),
            partner_detail=d.get("partner_detail", ""),
            config=d.get("config", ""),
            updated=float(d.get("updated", 0.0)),
        )


ABORT_OPTIONS = "abort-options"
"""Store namespace: ``<session>`` → what the operator chose for the session's abort
(``keep_data``: an abort from Merge keeps the live data instead of returning checkpointed
data volumes to their checkpoint)."""


def abort_options(store: Store, session: str) -> dict[str, Any]:
    doc = store.get_doc(ABORT_OPTIONS, session) if session else None
    return dict(doc) if isinstance(doc, dict) else {}


def load_status(store: Store) -> Status:
    rows = store.query("SELECT doc FROM status WHERE id=1")
    if not rows:
        return Status()
    return Status.from_dict(json.loads(rows[0]["doc"]))


def save_status(store: Store, status: Status) -> None:
    status.updated = time.time()
    with store.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO status (id, doc) VALUES (1, ?)",
            (json.dumps(status.to_dict(), sort_keys=True),),
        )
