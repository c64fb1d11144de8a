"""The service backend seam: who starts, stops and probes an application.

Two backends sit behind ``Backend``: the built-in supervisor (``supervisor.py``: keepers
holding the listening sockets) and systemd (``systemd.py``: ``systemctl``). ``backend_kind``
says which one a service uses (SPEC §5): systemd when it is PID 1 and the service names a
unit (or says ``backend = "systemd"``), else the supervisor; ``backends.backend_for`` gives
the object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from activeupgrade.config.model import ServiceBackend, ServiceSpec
from activeupgrade.model.states import Side


@dataclass
class ServiceStatus:
    """What ``au service status`` shows for one service."""

    name: str
    backend: str
    running: bool
    pid: int = 0
    detail: str = ""
    healthy: bool | None = None
    """None when not probed."""
    keeper_pid: int = 0
    sockets: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    started_at: float = 0.0
    last_exit: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StopResult:
    """A stop: when the stop began, when the old application was gone."""

    already: bool
    began: float
    exited_at: float
    killed: bool = False

    @property
    def seconds(self) -> float:
        return max(0.0, self.exited_at - self.began)


@dataclass
class StartResult:
    """A start: when it began, when the application answered its health check."""

    already: bool
    began: float
    healthy_at: float
    pid: int = 0
    detail: str = ""

    @property
    def seconds(self) -> float:
        return max(0.0, self.healthy_at - self.began)


class Check(Protocol):
    def __call__(self) -> None: ...


class Backend(Protocol):
    kind: str

    def status(self, spec: ServiceSpec, *, probe: bool = False) -> ServiceStatus:
        """Current state; ``probe`` also runs the health check."""

    def start(self, spec: ServiceSpec, *, check: Check | None = None) -> StartResult:
        """Start if not running, then wait until healthy (``spec.start_timeout``)."""

    def stop(self, spec: ServiceSpec) -> StopResult:
        """Stop if running (stop signal, grace, SIGKILL); listening sockets stay held."""

    def is_enabled(self, spec: ServiceSpec, side: Side) -> bool:
        """The startup type of the service on ``side``."""

    def set_enabled(self, spec: ServiceSpec, side: Side, enabled: bool) -> None:
        """Change the startup type on ``side`` (only ever called for the Upgrade Side)."""

    def restore_after_switch(self, spec: ServiceSpec, enabled: bool) -> None:
        """At merge, after the live paths were switched: the saved startup type again."""


def systemd_is_pid1() -> bool:
    """True when the host's init is systemd (the way systemd itself tells: sd_booted)."""
    return Path("/run/systemd/system").is_dir()


def backend_kind(spec: ServiceSpec) -> ServiceBackend:
    """The backend a service uses on this host."""
    if spec.backend is ServiceBackend.AUTO:
        if spec.unit and systemd_is_pid1():
            return ServiceBackend.SYSTEMD
        return ServiceBackend.SUPERVISOR
    return spec.backend
