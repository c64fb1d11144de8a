"""The status document as clients see it (``GET /status``, the ``status`` events): one
typed definition used by the server, the API client, the CLI, both consoles, and the JSON
schema that documents it (``status_schema``).

It is the stored engine status (``status.py``) plus what is computed live: the partner
state, the allowed operator actions and maintenance operations with their costs, the
duplex indicator and the platform's facts, the progress of the running step.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from activeupgrade.model.states import (
    OperationalState,
    OperatorAction,
    Request,
    UpgradeState,
)

VIEW_FORMAT = 2
"""Version of the status document; a client refuses nothing newer, it ignores new keys."""


@dataclass(frozen=True)
class Progress:
    """Where the running request is."""

    request: str = ""
    """The request (or operation's request) running."""
    step: str = ""
    """The step running now."""
    index: int = 0
    """Its position in the request, from 0."""
    total: int = 0
    """The number of steps of the request."""
    percent: float = 0.0
    """How far the step is (0–100): it never goes back and stays below 100 while the
    step runs."""
    text: str = ""
    """What the step says it is doing."""
    overall: float = 0.0
    """How far the request is (0–100): the ended steps plus the running step's part;
    never goes back, below 100 until the request ended."""
    started: float = 0.0
    """When the running step began (seconds since the epoch)."""
    elapsed: float = 0.0
    """Seconds the running step has taken so far."""
    bytes_done: int = 0
    """Bytes the step has handled (copied, compared), when it counts them."""
    bytes_total: int = 0
    """Bytes the step has to handle in all (0: not counted)."""
    files_done: int = 0
    """Files (entries) the step has handled, when it counts them."""
    files_total: int = 0
    """Files (entries) the step has to handle in all (0: not counted)."""
    bytes_per_second: int = 0
    """The step's rate so far (0: not counted)."""
    eta: float | None = None
    """Estimated seconds left in the step (None: not known yet)."""


@dataclass(frozen=True)
class StatusView:
    """The status bar (SPEC §2.4) and what the consoles need to draw their buttons."""

    upgrade_state: UpgradeState
    """Where the host is in the session (Idle, PrepareSplit, Split, …)."""
    operational_state: OperationalState
    """Ready, Busy or Broken."""
    request: Request
    """The running request (or operation), or the last one that ran."""
    partner_state: str = "None"
    """The Upgrade Side's state: a PartnerState value, or ``Hung: <state>``."""
    partner_detail: str = ""
    """More about the partner (isolation, why it is hung)."""
    sub_request: Request | None = None
    """Start, Stop or Backup while such a phase of the request runs."""
    step: str = ""
    """The running step, or the failed one when Broken."""
    action: OperatorAction | None = None
    """The operator action being executed, or the last one."""
    pending: tuple[Request, ...] = ()
    """Requests of the action still to complete."""
    session: str = ""
    """The session id ("" in Idle)."""
    config: str = ""
    """The configuration file of the session (or loaded for the next)."""
    reason: str = ""
    """Why the request is Broken."""
    error: dict[str, Any] | None = None
    """The error that broke the request (or failed the last check): error, message, hint,
    exit_code, details, step."""
    operation: dict[str, Any] | None = None
    """The maintenance operation running now (id, operation, args)."""
    last_operation: dict[str, Any] | None = None
    """The last maintenance operation that ended (id, operation, outcome)."""
    attempt: int = 0
    """Attempt of the current request (1, then 2… on Retry)."""
    max_attempts: int = 0
    """Attempts before Retry needs --force."""
    run: str = ""
    """The id of the current request's run."""
    abort_from: UpgradeState | None = None
    """The state an abort started from."""
    allowed_actions: tuple[str, ...] = ()
    """Operator actions allowed now (check, split, …, retry)."""
    allowed_operations: tuple[str, ...] = ()
    """Maintenance operations allowed now (adopt, exec, …)."""
    costs: dict[str, str] = field(default_factory=dict)
    """What each allowed action costs the applications ("no disruption", …)."""
    duplex: bool = False
    """Every volume's two replicas are identical (a session may start)."""
    facts: dict[str, Any] = field(default_factory=dict)
    """The platform's live facts: volumes, pending resync, isolation, …"""
    progress: Progress = field(default_factory=Progress)
    """Where the running request is."""
    updated: float = 0.0
    """When the stored status last changed (seconds since the epoch)."""
    format: int = VIEW_FORMAT
    """Version of this document."""

    @property
    def broken(self) -> bool:
        return self.operational_state is OperationalState.BROKEN

    @property
    def busy(self) -> bool:
        return self.operational_state is OperationalState.BUSY

    def allows(self, action: OperatorAction) -> bool:
        return action.value in self.allowed_actions

    def with_progress(self, data: dict[str, Any]) -> StatusView:
        """This status with the progress of a ``progress`` event."""
        return dataclasses.replace(self, progress=_progress(data))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if hasattr(v, "value"):
                d[k] = v.value
        d["pending"] = [r.value for r in self.pending]
        d["allowed_actions"] = list(self.allowed_actions)
        d["allowed_operations"] = list(self.allowed_operations)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StatusView:
        def enum(kind: Any, key: str) -> Any:
            raw = d.get(key)
            return kind(raw) if raw else None

        return cls(
            upgrade_state=UpgradeState(d["upgrade_state"]),
            operational_state=OperationalState(d["operational_state"]),
            request=Request(d.get("request") or Request.IDLE.value),
            partner_state=str(d.get("partner_state", "None")),
            partner_detail=str(d.get("partner_detail", "")),
            sub_request=enum(Request, "sub_request"),
            step=str(d.get("step", "")),
            action=enum(OperatorAction, "action"),
            pending=tuple(Request(r) for r in d.get("pending") or ()),
            session=str(d.get("session", "")),
            config=str(d.get("config", "")),
            reason=str(d.get("reason", "")),
            error=d.get("error") if isinstance(d.get("error"), dict) else None,
            operation=d.get("operation") if isinstance(d.get("operation"), dict) else None,
            last_operation=(d.get("last_operation")
                            if isinstance(d.get("last_operation"), dict) else None),
            attempt=int(d.get("attempt", 0)),
            max_attempts=int(d.get("max_attempts", 0)),
            run=str(d.get("run", "")),
            abort_from=enum(UpgradeState, "abort_from"),
            allowed_actions=tuple(d.get("allowed_actions") or ()),
            allowed_operations=tuple(d.get("allowed_operations") or ()),
            costs=dict(d.get("costs") or {}),
            duplex=bool(d.get("duplex", False)),
            facts=dict(d.get("facts") or {}),
            progress=_progress(d.get("progress") or {}),
            updated=float(d.get("updated", 0.0)),
            format=int(d.get("format", VIEW_FORMAT)),
        )


def _progress(data: dict[str, Any]) -> Progress:
    def num(key: str) -> int:
        return int(data.get(key, 0) or 0)

    eta = data.get("eta")
    return Progress(
        request=str(data.get("request", "")), step=str(data.get("step", "")),
        index=num("index"), total=num("total"),
        percent=float(data.get("percent", 0.0) or 0.0), text=str(data.get("text", "")),
        overall=float(data.get("overall", 0.0) or 0.0),
        started=float(data.get("started", 0.0) or 0.0),
        elapsed=float(data.get("elapsed", 0.0) or 0.0),
        bytes_done=num("bytes_done"), bytes_total=num("bytes_total"),
        files_done=num("files_done"), files_total=num("files_total"),
        bytes_per_second=num("bytes_per_second"),
        eta=float(eta) if isinstance(eta, int | float) else None,
    )


def _schema_of(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return {"anyOf": [_schema_of(inner[0]), {"type": "null"}]}
    if isinstance(tp, type) and issubclass(tp, str) and hasattr(tp, "__members__"):
        return {"type": "string", "enum": [m.value for m in tp]}  # type: ignore[attr-defined]
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if origin is tuple:
        return {"type": "array", "items": _schema_of(args[0])}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if dataclasses.is_dataclass(tp):
        return _object_schema(tp)
    return {}


def _object_schema(cls: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        props[f.name] = _schema_of(hints[f.name])
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {"type": "object", "properties": props, "required": required}


def status_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of the status document, from its one definition."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Active Upgrade status", **_object_schema(StatusView)}
