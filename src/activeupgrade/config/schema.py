"""The one description of every configuration setting.

Validation (``config/validate.py``), the JSON Schema (``au config schema``), the generated
reference (``docs/configuration.md``) and the commented template (``au config new``) are all
derived from ``FILE_SCHEMA`` below, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from activeupgrade.config.model import (
    ControlType,
    Handover,
    HealthKind,
    Readiness,
    ServiceBackend,
    Switchover,
    Timing,
    VolumeRole,
)

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
"""``30s``, ``2m``, ``1h30m``, ``500ms``; a bare number means seconds."""

ISOLATIONS = ("auto", "namespaces", "directory")
OUTSIDE = ("copy-on-write", "read-only")
SIGNALS = (
    "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGWINCH",
)


class Kind(StrEnum):
    """The type of a setting's value."""

    TEXT = "text"
    """Any string."""
    NAME = "name"
    """A name: letters, digits, ``.``, ``_``, ``-``, ``@``; starts with a letter or digit."""
    ABSPATH = "abspath"
    """An absolute path (``/`` first)."""
    FILENAME = "filename"
    """A file name in the same folder (no ``/``)."""
    BOOL = "bool"
    """true or false."""
    INTEGER = "integer"
    """A whole number >= 1."""
    DURATION = "duration"
    """Seconds as a number, or ``30s``, ``2m``, ``1h30m``, ``500ms``."""
    ENUM = "enum"
    """One of a fixed list of words."""
    ARGV = "argv"
    """A list of strings (a command and its arguments; no shell)."""
    TEXT_LIST = "text-list"
    """A list of strings."""
    PATH_LIST = "path-list"
    """A list of absolute paths (globs allowed where said)."""
    FILENAME_LIST = "filename-list"
    """A list of file names in the same folder."""
    ENV = "env"
    """A table of variable names to string values."""
    LISTEN = "listen"
    """``HOST:PORT``, ``[IPv6]:PORT`` or an absolute Unix socket path."""
    CIDR = "cidr"
    """An interface address with its prefix length, e.g. ``169.254.77.1/30``."""
    TABLE = "table"
    """A ``[table]`` of settings."""
    TABLES = "tables"
    """An ``[[array]]`` of tables, one per item."""


@dataclass(frozen=True)
class Setting:
    """One key of a configuration file."""

    key: str
    kind: Kind
    description: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    fields: tuple[Setting, ...] = ()
    """The settings of a TABLE or of each item of TABLES."""
    example: Any = None

    def field(self, key: str) -> Setting | None:
        for f in self.fields:
            if f.key == key:
                return f
        return None

    @property
    def expected(self) -> str:
        """What a valid value looks like, in words (used in error messages)."""
        match self.kind:
            case Kind.ENUM:
                return "one of " + ", ".join(f'"{c}"' for c in self.choices)
            case Kind.TABLE:
                return f"a table [{self.key}]"
            case Kind.TABLES:
                return f"an array of tables [[{self.key}]]"
        return _EXPECTED[self.kind]


_EXPECTED = {
    Kind.TEXT: "a string",
    Kind.NAME: "a name (letters, digits, '.', '_', '-', '@'; starting with a letter or digit)",
    Kind.ABSPATH: 'an absolute path such as "/opt/shop"',
    Kind.FILENAME: 'a file name in the same folder such as "child.toml"',
    Kind.BOOL: "true or false",
    Kind.INTEGER: "a whole number >= 1",
    Kind.DURATION: 'a duration: seconds as a number, or "30s", "2m", "1h30m", "500ms"',
    Kind.ARGV: 'a list of strings such as ["/usr/bin/app", "--port", "80"]',
    Kind.TEXT_LIST: "a list of strings",
    Kind.PATH_LIST: 'a list of absolute paths such as ["/var/log/shop/*.log"]',
    Kind.FILENAME_LIST: 'a list of file names in the same folder such as ["child.toml"]',
    Kind.ENV: 'a table of strings such as { LANG = "C.UTF-8" }',
    Kind.LISTEN: 'an address "HOST:PORT", "[IPv6]:PORT" or an absolute Unix socket path',
    Kind.CIDR: 'an address with prefix length such as "169.254.77.1/30"',
}


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(m.value for m in enum)


SOCKET = Setting(
    "socket", Kind.TABLES,
    "Listening sockets the tool creates and holds across the merge, handed to the application "
    "as the service's handover says (LISTEN_FDS, NGINX, or relayed by the keeper's proxy to "
    "upstream), so clients wait instead of failing.",
    fields=(
        Setting("name", Kind.NAME, "Name passed in LISTEN_FDNAMES; unique in its service.",
                required=True, example="http"),
        Setting("listen", Kind.LISTEN, "Where to listen.", required=True,
                example="127.0.0.1:8080"),
        Setting("backlog", Kind.INTEGER,
                "Listen backlog: connections that can wait during the merge switchover.",
                default=1024),
        Setting("upstream", Kind.LISTEN, "Proxy handover only: the private address the daemon "
                "listens on itself (HOST:PORT or an absolute Unix path); the keeper relays "
                "connections from listen to it.", default="", example="127.0.0.1:16379"),
    ),
)

HEALTH = Setting(
    "health", Kind.TABLE,
    "How the tool knows the application is up after a start.",
    fields=(
        Setting("kind", Kind.ENUM, "tcp (connect to target), http (GET target answers 2xx), "
                "command (argv exits 0) or none (started means healthy).",
                default="none", choices=_values(HealthKind)),
        Setting("target", Kind.TEXT, "host:port for tcp, a URL for http.", default="",
                example="127.0.0.1:8080"),
        Setting("argv", Kind.ARGV, "Probe command for kind = \"command\".", default=[]),
        Setting("timeout", Kind.DURATION, "Time allowed for one probe.", default=5.0),
        Setting("interval", Kind.DURATION, "Pause between probes while waiting for a start.",
                default=0.2),
    ),
)

SERVICE = Setting(
    "service", Kind.TABLES,
    "Application services the session stops and starts (one [[service]] table each).",
    fields=(
        Setting("name", Kind.NAME, "Unique service name.", required=True, example="shop"),
        Setting("command", Kind.ARGV, "The application's command (supervisor backend); "
                "argv list, no shell.", default=[], example=["/opt/shop/bin/shop"]),
        Setting("backend", Kind.ENUM, "auto (systemd when it is PID 1 and unit is set, else "
                "the built-in supervisor), supervisor or systemd.",
                default="auto", choices=_values(ServiceBackend)),
        Setting("unit", Kind.TEXT, "systemd unit name (systemd backend).", default=""),
        Setting("workdir", Kind.ABSPATH, "Working directory of the application.",
                default=""),
        Setting("env", Kind.ENV, "Extra environment variables of the application.",
                default={}),
        Setting("user", Kind.TEXT, "Run the application as this user (default: the tool's "
                "user).", default=""),
        Setting("stop_signal", Kind.ENUM, "Signal that asks the application to stop.",
                default="SIGTERM", choices=SIGNALS),
        Setting("stop_grace", Kind.DURATION, "Time between the stop signal and SIGKILL.",
                default=10.0),
        Setting("start_timeout", Kind.DURATION, "Time for the application to become healthy "
                "after a start.", default=30.0),
        Setting("enabled", Kind.BOOL, "Startup type: started when its side boots. Saved and "
                "disabled on the Upgrade Side at split, restored at merge.", default=True),
        Setting("handover", Kind.ENUM, "How the held sockets reach the application: "
                "listen-fds (systemd-style LISTEN_FDS), nginx (NGINX=\"3;4;\", non-blocking) "
                "or proxy (the keeper relays the public address to each socket's upstream, "
                "for daemons that bind their own port).", default="listen-fds",
                choices=_values(Handover)),
        Setting("switchover", Kind.ENUM, "stop-start (old stops, switch, new starts), "
                "late-stop (the old version serves through the switch and stops right before "
                "the new one starts) or overlap (the new version starts and serves before the "
                "old one gets its stop signal; listen-fds and nginx handovers only).",
                default="stop-start",
                choices=_values(Switchover)),
        Setting("ready", Kind.ENUM, "What says a just started instance serves, besides the "
                "health probe (which, during an overlap, the old instance may answer): probe "
                "(the probe alone), notify (READY=1 on NOTIFY_SOCKET, sd_notify) or children "
                "(it started its worker processes, as nginx does once it serves).",
                default="probe", choices=_values(Readiness)),
        Setting("hold_limit", Kind.DURATION, "Longest wait of a client in a held socket while "
                "no application serves; then its connection is closed (an answer, not a "
                "hang).", default=30.0),
        SOCKET,
        HEALTH,
    ),
)

ACTION = Setting(
    "action", Kind.TABLES,
    "Custom actions: executables the tool runs at defined moments (one [[action]] table each).",
    fields=(
        Setting("name", Kind.NAME, "Unique action name (default: the file's name).",
                default=""),
        Setting("file", Kind.ABSPATH, "The executable, on a system volume, owned by root and "
                "writable only by root.", required=True, example="/opt/shop/bin/drain"),
        Setting("args", Kind.TEXT_LIST, "Arguments; %NAME% is replaced by the value of the "
                "variable NAME (no shell).", default=[]),
        Setting("control", Kind.ENUM, "When it runs: start-application, stop-application, "
                "readiness-check, advanced (every request) or backup (when merged).",
                required=True, choices=_values(ControlType), example="advanced"),
        Setting("timing", Kind.ENUM, "Order among actions of the same request: early, "
                "default or late (before = early, after = late).", default="default",
                choices=(*_values(Timing), "before", "after")),
        Setting("timeout", Kind.DURATION, "Time before the action's whole process group is "
                "killed (the request becomes Broken).", default=300.0),
        Setting("user", Kind.TEXT, "Run as this user (default root).", default=""),
        Setting("description", Kind.TEXT, "What the action does (log and summary).",
                default=""),
    ),
)

VOLUME = Setting(
    "volume", Kind.TABLES,
    "The volume selection (one [[volume]] table each). Only the top file's selection counts: "
    "children's volumes are ignored with a notice.",
    fields=(
        Setting("path", Kind.ABSPATH, "Live path of the volume; volumes must not overlap.",
                required=True, example="/opt/shop"),
        Setting("role", Kind.ENUM, "system (software, configuration: upgraded) or data "
                "(persistent data: never visible to the Upgrade Side).", default="system",
                choices=_values(VolumeRole)),
        Setting("checkpoint", Kind.BOOL, "Data volumes only: rollback-safe data. PrepareMerge "
                "pre-syncs the volume's stale replica; ExecuteMerge, once the applications "
                "stopped, brings it up to date and freezes it as the checkpoint (its copies "
                "are reflink clones where the storage allows). In Merge the writes made since "
                "are listed; an abort from Merge saves them aside (AU_HOME/saved-writes), "
                "then returns the volume to the checkpoint (`au abort --keep-data` keeps the "
                "live data instead); Commit releases it. Every service must then use "
                "switchover = \"stop-start\" (the data is quiescent at the checkpoint).",
                default=False),
    ),
)

MERGE = Setting(
    "merge", Kind.TABLE,
    "Settings of the merge.",
    fields=(
        Setting("confirm_within", Kind.DURATION, "Confirmation window after merge: the "
                "operator must confirm the upgrade (`au confirm`, the consoles' Confirm "
                "button, or `au commit`) within this time once the applications run upgraded, "
                "otherwise the daemon aborts from Merge by itself (logged with the reason). "
                "0: no window.", default=0.0, example="10m"),
    ),
)

BACKUP = Setting(
    "backup", Kind.TABLE,
    "Files saved from the old Production system replicas at merge.",
    fields=(
        Setting("paths", Kind.PATH_LIST, "Files and globs on system volumes. Children add "
                "theirs.", default=[], example=["/var/log/shop/*.log"]),
        Setting("folder", Kind.ABSPATH, "Where timestamped backup folders go (default "
                "AU_HOME/backups).", default=""),
    ),
)

UPGRADE_SIDE = Setting(
    "upgrade_side", Kind.TABLE,
    "Settings of the Upgrade Side.",
    fields=(
        Setting("host_address", Kind.CIDR, "Host end of the private link. Unset (with "
                "side_address unset): a free /30 in 169.254.0.0/16 chosen for this instance "
                "when the Upgrade Side starts.", default=""),
        Setting("side_address", Kind.CIDR, "Upgrade Side end of the private link (same "
                "subnet as host_address; set both or neither).", default=""),
        Setting("hostname", Kind.TEXT, "Hostname inside the Upgrade Side (default "
                "<host>-upgrade).", default=""),
        Setting("isolation", Kind.ENUM, "auto (namespaces when privileged), namespaces or "
                "directory (unprivileged working directory).", default="auto",
                choices=ISOLATIONS),
        Setting("outside", Kind.ENUM, "What the Upgrade Side sees of the host outside the "
                "volumes: copy-on-write (writes land on its scratch, are listed before merge "
                "and never kept) or read-only.", default="copy-on-write", choices=OUTSIDE),
        Setting("scratch_size", Kind.TEXT, "Size limit of the Upgrade Side's scratch (writes "
                "outside the volumes, data volume scratch, /run, /tmp, /var/tmp): a size "
                "such as \"4G\" or a share of memory such as \"25%\".", default="25%",
                example="4G"),
        Setting("packages", Kind.PATH_LIST, "Installers or packages that must be present "
                "locally (the Upgrade Side has no network). Children add theirs.", default=[],
                example=["/var/cache/shop/shop-2.0.tar.gz"]),
    ),
)

FILE_SCHEMA = Setting(
    "", Kind.TABLE,
    "An Active Upgrade configuration file.",
    fields=(
        Setting("description", Kind.TEXT, "What this upgrade is about.", default=""),
        Setting("include", Kind.FILENAME_LIST, "Child configuration files, in the same folder "
                "as this one. On conflict this file wins.", default=[]),
        VOLUME,
        SERVICE,
        ACTION,
        BACKUP,
        MERGE,
        UPGRADE_SIDE,
    ),
)
