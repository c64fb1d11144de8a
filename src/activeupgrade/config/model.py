"""The effective configuration of a session, as typed data.

This is what the engine and the platform parts read. ``config/loader.py`` builds it from
TOML files (nesting, provenance, validation); a session without a file builds it from the
adopted volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class VolumeRole(StrEnum):
    """What a volume holds."""

    SYSTEM = "system"
    """Software, configuration, caches: upgraded on the Upgrade Side."""
    DATA = "data"
    """Persistent application data: never visible to the Upgrade Side; follows the apps."""


class ControlType(StrEnum):
    """When a custom action runs (SPEC §6)."""

    START_APPLICATION = "start-application"
    """Starts an application: on the Upgrade Side... at merge, after the switch."""
    STOP_APPLICATION = "stop-application"
    """Stops an application: on the Upgrade Side at split, on Production at merge."""
    READINESS_CHECK = "readiness-check"
    """Takes part in the readiness checks (exit 0 = ready)."""
    ADVANCED = "advanced"
    """Runs at every request, on the side(s) the request acts on."""
    BACKUP = "backup"
    """Runs when merged, to save files changed on the old Production replicas."""


class Timing(StrEnum):
    """Order of advanced actions among themselves (aliases: before=early, after=late)."""

    EARLY = "early"
    """Runs first."""
    DEFAULT = "default"
    """Runs after the early ones."""
    LATE = "late"
    """Runs last."""

    @classmethod
    def parse(cls, text: str) -> Timing:
        aliases = {"before": cls.EARLY, "after": cls.LATE}
        return aliases[text] if text in aliases else cls(text)

    @property
    def order(self) -> int:
        return list(Timing).index(self)


class HealthKind(StrEnum):
    """How a service's health is probed."""

    TCP = "tcp"
    """A TCP connect to ``target`` (host:port) succeeds."""
    HTTP = "http"
    """An HTTP GET of ``target`` (a URL) answers 2xx."""
    COMMAND = "command"
    """The command ``argv`` exits 0."""
    NONE = "none"
    """No probe: started means healthy."""


class ServiceBackend(StrEnum):
    """Who runs the application."""

    AUTO = "auto"
    """systemd when it is PID 1 and ``unit`` is set, else the built-in supervisor."""
    SUPERVISOR = "supervisor"
    """The tool's own supervisor (held sockets, re-adoption)."""
    SYSTEMD = "systemd"
    """A systemd unit driven through systemctl."""


class Handover(StrEnum):
    """How a service's held listening sockets reach the application."""

    LISTEN_FDS = "listen-fds"
    """systemd-style socket activation: the sockets at fds 3.., ``LISTEN_FDS``,
    ``LISTEN_PID``, ``LISTEN_FDNAMES`` (blocking sockets, as systemd passes them)."""
    NGINX = "nginx"
    """nginx's own inheritance: the sockets at fds 3.. and ``NGINX="3;4;"``, in
    non-blocking mode as nginx expects (its ``listen`` lines must name the same addresses)."""
    PROXY = "proxy"
    """For daemons that bind their own port (Redis, PostgreSQL): the keeper holds the public
    address and relays each connection to the socket's ``upstream``, a private address the
    daemon listens on. During a switch new connections wait in the keeper, never refused."""


class Switchover(StrEnum):
    """How the old and the new version of a service take turns at merge and abort."""

    STOP_START = "stop-start"
    """The old version stops before the switch, the new one starts after it; clients wait
    in the held socket meanwhile."""
    LATE_STOP = "late-stop"
    """The old version keeps serving while the live paths switch and stops right before the
    new one starts: clients wait only for the daemon's own stop and start. For daemons that
    cannot share a socket (``proxy`` handover) and read nothing of their software while
    they run (or tolerate its new version)."""
    OVERLAP = "overlap"
    """The new version starts on the switched software while the old one still serves; once
    it is healthy the old one gets its stop signal (nginx: SIGQUIT) and finishes its work.
    For daemons that can share a socket (``listen-fds`` or ``nginx`` handover)."""


class Readiness(StrEnum):
    """What says that a just started instance serves (besides its health probe).

    With an overlap switchover the health probe alone cannot tell the instances apart: it
    may be answered by the old one through the shared socket."""

    PROBE = "probe"
    """The health probe answers (enough when only one instance runs)."""
    NOTIFY = "notify"
    """The instance sends ``READY=1`` on ``NOTIFY_SOCKET`` (sd_notify, systemd's
    ``Type=notify``); then the health probe answers."""
    CHILDREN = "children"
    """The instance has started its worker processes (nginx: the master forks its workers
    once its configuration is loaded and its sockets are open); then the health probe
    answers."""


@dataclass(frozen=True)
class VolumeSpec:
    path: str
    """Absolute path of the volume's live directory."""
    role: VolumeRole = VolumeRole.SYSTEM
    """system (upgraded) or data (follows the applications)."""
    checkpoint: bool = False
    """Data volumes: a checkpoint taken at merge (applications stopped), restorable by an
    abort from Merge; the writes made since are listed and saved aside on restore."""


@dataclass(frozen=True)
class SocketSpec:
    name: str
    """Name passed in LISTEN_FDNAMES."""
    listen: str
    """``HOST:PORT`` for TCP (``[::1]:PORT`` for IPv6) or an absolute path for a Unix socket."""
    backlog: int = 1024
    """Listen backlog: connections that wait during the merge switchover."""
    upstream: str = ""
    """Proxy handover: the private address the daemon itself listens on (``HOST:PORT`` or a
    Unix path); the keeper relays connections from ``listen`` to it."""


@dataclass(frozen=True)
class HealthSpec:
    kind: HealthKind = HealthKind.NONE
    """tcp, http, command or none."""
    target: str = ""
    """host:port (tcp) or URL (http)."""
    argv: tuple[str, ...] = ()
    """Command for kind=command."""
    timeout: float = 5.0
    """Seconds for one probe."""
    interval: float = 0.2
    """Seconds between probes while waiting for a start."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    """Unique service name."""
    command: tuple[str, ...] = ()
    """argv of the application (supervisor backend); no shell."""
    backend: ServiceBackend = ServiceBackend.AUTO
    """auto, supervisor or systemd."""
    unit: str = ""
    """systemd unit name (systemd backend)."""
    workdir: str = ""
    """Working directory (default: /)."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment variables."""
    user: str = ""
    """Run as this user (default: the tool's user)."""
    sockets: tuple[SocketSpec, ...] = ()
    """Listening sockets created and held by the tool (socket activation)."""
    health: HealthSpec = field(default_factory=HealthSpec)
    """Readiness/health probe."""
    stop_signal: str = "SIGTERM"
    """Signal sent to stop the application."""
    stop_grace: float = 10.0
    """Seconds to wait after the stop signal before SIGKILL."""
    start_timeout: float = 30.0
    """Seconds for the application to become healthy."""
    enabled: bool = True
    """Startup type: started when its side boots."""
    handover: Handover = Handover.LISTEN_FDS
    """listen-fds, nginx or proxy: how the held sockets reach the application."""
    switchover: Switchover = Switchover.STOP_START
    """stop-start or overlap: how the old and new versions take turns at merge and abort."""
    ready: Readiness = Readiness.PROBE
    """probe, notify or children: what says that a just started instance serves."""
    hold_limit: float = 30.0
    """Seconds a client may wait in a held socket while no application serves; after that
    it gets an answer (its connection is closed) instead of hanging."""


@dataclass(frozen=True)
class ActionSpec:
    name: str
    """Unique action name (defaults to the file's name)."""
    file: str
    """Absolute path of the executable, on a system volume."""
    control: ControlType
    """start-application, stop-application, readiness-check, advanced or backup."""
    args: tuple[str, ...] = ()
    """Arguments; ``%NAME%`` is replaced by the variable's value (no shell)."""
    timing: Timing = Timing.DEFAULT
    """early, default or late (before/after accepted)."""
    timeout: float = 300.0
    """Seconds before the whole process group is killed."""
    user: str = ""
    """Run as this user (default root)."""
    description: str = ""
    """What the action does, for the log and the summary."""


@dataclass(frozen=True)
class BackupSpec:
    paths: tuple[str, ...] = ()
    """Files and globs on system volumes saved from the old Production replicas at merge."""
    folder: str = ""
    """Where timestamped backup folders go (default AU_HOME/backups)."""


@dataclass(frozen=True)
class MergeSpec:
    confirm_within: float = 0.0
    """Seconds the operator has after merge to confirm (``au confirm`` or commit) before
    the daemon aborts from Merge by itself; 0: no window."""


@dataclass(frozen=True)
class UpgradeSideSpec:
    host_address: str = ""
    """Host end of the private link (CIDR); "" chooses a free /30 for this instance when the
    Upgrade Side starts."""
    side_address: str = ""
    """Upgrade Side end of the private link (CIDR); "" with host_address "" (chosen)."""
    hostname: str = ""
    """UTS hostname inside the Upgrade Side (default: <host>-upgrade)."""
    isolation: str = "auto"
    """auto (namespaces when privileged), namespaces, or directory (unprivileged)."""
    packages: tuple[str, ...] = ()
    """Installers or packages that must be present locally (the Upgrade Side has no
    network): absolute paths checked by the readiness checks."""
    outside: str = "copy-on-write"
    """What the Upgrade Side sees outside the volumes: copy-on-write (writes are listed
    before merge and never kept) or read-only."""
    scratch_size: str = "25%"
    """Size limit of the Upgrade Side's scratch (writes outside the volumes, data volume
    scratch, /run, /tmp, /var/tmp): a size such as "4G" or a share of memory such as "25%"."""


@dataclass(frozen=True)
class Config:
    """The effective configuration of a session."""

    description: str = ""
    """What this upgrade is about, in the operator's words."""
    volumes: tuple[VolumeSpec, ...] = ()
    """The volume selection (from the top file only)."""
    services: tuple[ServiceSpec, ...] = ()
    """Application services stopped and started by the session."""
    actions: tuple[ActionSpec, ...] = ()
    """Custom actions, in declaration order (parent first)."""
    backup: BackupSpec = field(default_factory=BackupSpec)
    """Files saved from the old Production replicas at merge."""
    upgrade_side: UpgradeSideSpec = field(default_factory=UpgradeSideSpec)
    """Upgrade Side settings."""
    merge: MergeSpec = field(default_factory=MergeSpec)
    """Merge settings (the confirmation window)."""
    source: str = ""
    """The top configuration file ("" for a session without a file)."""
    files: tuple[str, ...] = ()
    """Every file the configuration was read from (parent first)."""
    provenance: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Setting path (e.g. ``service.shop.command``) → file it came from (``(default)`` for a
    setting no file gives)."""
    notices: tuple[str, ...] = ()
    """What nesting ignored (children's volume selections, settings the parent overrides)."""

    @property
    def checkpointed(self) -> tuple[VolumeSpec, ...]:
        """The data volumes with a checkpoint at merge."""
        return tuple(v for v in self.volumes if v.checkpoint)

    def actions_of(self, control: ControlType) -> list[ActionSpec]:
        """Actions of one control type, ordered by timing then declaration order."""
        found = [a for a in self.actions if a.control is control]
        return sorted(found, key=lambda a: a.timing.order)
