"""What a step is, and what it is given when it runs.

A request is an ordered list of named steps supplied by the platform parts (volumes, side,
services, actions, backup, checks) through ``platform/recipe.py``. The engine journals
each step durably before and after it runs; a step must be idempotent (running it again
after a crash at any point gives the same result) and must honour its deadline by calling
``ctx.check()`` between units of work (the subprocess wrapper is given ``ctx.remaining()``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from activeupgrade.activity import ActivityLog, Context
from activeupgrade.errors import Interrupted, StepTimeout
from activeupgrade.model.states import Request, Severity, Side, UpgradeState

if TYPE_CHECKING:
    from activeupgrade.config.model import Config
    from activeupgrade.instance import Instance
    from activeupgrade.store.db import Store


@dataclass(frozen=True)
class Step:
    """One named, idempotent unit of a request."""

    name: str
    """Stable name, unique within its request (journaled; retry resumes by it)."""
    run: Callable[[StepContext], None]
    timeout: float = 600.0
    """Deadline in seconds; exceeding it makes the request Broken."""
    description: str = ""
    side: Side = Side.PRODUCTION
    """The side the step acts on (shown in the activity log)."""
    sub_request: Request | None = None
    """``Start``, ``Stop`` or ``Backup`` when the step belongs to an application-control or
    backup phase of its request (shown in the status, given to actions as
    ``ACTIVE_UPGRADE_REQUEST`` as the original did)."""
    rerun: bool = False
    """Run again on every attempt, even when an earlier attempt of the same run ended it: a
    step that only reports what is true now (e.g. what changed on Production since the
    split), so its report is never stale after a Retry."""


class CancelToken:
    """Set by an operator abort while a request is running; steps stop at ``check()``."""

    def __init__(self) -> None:
        self.reason = ""

    def cancel(self, reason: str) -> None:
        self.reason = reason

    @property
    def cancelled(self) -> bool:
        return bool(self.reason)


@dataclass
class StepContext:
    """Everything a step may use. Steps write to the log under their own node."""

    instance: Instance
    store: Store
    log: ActivityLog
    config: Config
    session: str
    request: Request
    state: UpgradeState
    abort_from: UpgradeState | None
    """For Abort steps: the state the operator aborted from (Split, Merge, ...)."""
    attempt: int
    step: str
    node: int
    """Activity log id of this step's entry: the parent of what the step writes."""
    deadline: float
    cancel: CancelToken = field(default_factory=CancelToken)
    side: Side = Side.PRODUCTION
    progress_cb: Callable[[float, str, dict[str, int]], None] | None = None
    sub_request: Request | None = None
    """The phase of the request this step belongs to (Start, Stop, Backup), if any."""
    output_cb: Callable[[str, str], None] | None = None
    """Streams a line of a program's output (stream, line) to whoever follows the run."""
    results: dict[str, Any] = field(default_factory=dict)
    """Facts the step reports (shown in the step's end entry and the API)."""

    @property
    def log_ctx(self) -> Context:
        return Context(self.session, self.side.value, self.state.value, self.request.value)

    @property
    def current_request(self) -> Request:
        """What the engine is executing right now: the phase (Start, Stop, Backup) when the
        step belongs to one, else the request."""
        return self.sub_request or self.request

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise if the deadline passed or the operator aborted this request."""
        if self.cancel.cancelled:
            raise Interrupted(f"step {self.step} stopped: {self.cancel.reason}")
        if time.monotonic() > self.deadline:
            raise StepTimeout(f"step {self.step} exceeded its deadline")

    def write(
        self,
        event: str,
        message: str,
        *,
        severity: Severity = Severity.INFO,
        details: dict[str, Any] | None = None,
        parent: int | None = None,
        side: Side | None = None,
    ) -> int:
        """Write an activity log entry under this step (or under ``parent``)."""
        return self.log.write(
            event, message, severity=severity, parent=parent if parent is not None else self.node,
            ctx=self.log_ctx, details=details, side=(side or self.side).value,
        )

    def progress(self, percent: float, text: str, *, bytes_done: int | None = None,
                 bytes_total: int | None = None, files_done: int | None = None,
                 files_total: int | None = None) -> None:
        """Report progress of this step (status bar, CLI progress display): how far it is
        (0–100, shown below 100 until the step ends), what it does, and what it counted
        (bytes and files done and to do: clients show them with the rate and the time
        left)."""
        if self.progress_cb is not None:
            counts = {k: v for k, v in (("bytes_done", bytes_done), ("bytes_total", bytes_total),
                                        ("files_done", files_done), ("files_total", files_total))
                      if v is not None}
            self.progress_cb(percent, text, counts)

    def output(self, stream: str, line: str) -> None:
        """Stream one line a program printed (``au exec`` shows it as it comes)."""
        if self.output_cb is not None:
            self.output_cb(stream, line)
