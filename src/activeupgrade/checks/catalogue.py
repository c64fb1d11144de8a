"""Every readiness check (SPEC §9), declared once: id, severity, cause and fix.

The ids are stable (scripts and the troubleshooting table in ``docs/troubleshooting.md``
refer to them). The functions that decide each verdict live in ``probes/``; the sets run
at each moment are ``ON_DEMAND`` (``au check``, CheckReadiness), ``FINAL`` (PrepareSplit)
and ``UPGRADE_SIDE`` (PrepareMerge).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CheckSeverity(StrEnum):
    """What a failed check does."""

    ERROR = "error"
    """Blocks: PrepareSplit or PrepareMerge becomes Broken naming the check."""
    WARNING = "warning"
    """Informs: the session may go on."""


@dataclass(frozen=True)
class CheckDef:
    """One readiness check."""

    id: str
    """Stable id, e.g. ``AU-C001``."""
    name: str
    """Short stable name, e.g. ``duplex``."""
    severity: CheckSeverity
    """Severity of a failure (a few checks soften to warning where said in ``cause``)."""
    title: str
    """What is checked, in one line."""
    cause: str
    """Why it fails (troubleshooting table)."""
    fix: str
    """The recommended action when it fails."""


E, W = CheckSeverity.ERROR, CheckSeverity.WARNING

CHECKS: tuple[CheckDef, ...] = (
    CheckDef("AU-C001", "duplex", E, "Every volume's two replicas are identical but for "
             "what the applications changed since the last resync (duplex mode)",
             "A resync is running or stopped, a volume is still in a session, or a live "
             "path lost its mount (`umount`, a reboot before the boot unit ran).",
             "Wait for the resync to finish (`au status`), or run `au volume resync NAME`; "
             "for a live path, `au volume attach NAME`."),
    CheckDef("AU-C002", "volumes-exist", E, "Every selected volume exists and is a folder",
             "A [[volume]] path does not exist or is not a directory. A warning when no "
             "volume is selected at all (the session would upgrade nothing).",
             "Create the folder, or remove the volume from the configuration."),
    CheckDef("AU-C003", "volumes-managed", E, "Every selected volume is managed (adopted)",
             "The volume was never adopted, so it has no second replica.",
             "Run `au volume adopt PATH` (it copies the replica), then check again."),
    CheckDef("AU-C004", "volumes-overlap", E, "No volume lies inside another",
             "Two selected volumes are the same folder or one contains the other.",
             "Select either the parent folder or the folders inside it, not both."),
    CheckDef("AU-C005", "volumes-same-filesystem", E,
             "Each volume is on the same filesystem as its replicas",
             "The replicas live on another filesystem than the volume: the live path cannot "
             "be switched atomically and copies cannot share blocks.",
             "Put the instance's replicas folder (AU_HOME/replicas) on the volume's "
             "filesystem, or re-adopt the volume there."),
    CheckDef("AU-C006", "free-space", E,
             "The replicas' filesystem has room for a full copy of the volumes",
             "Less free space than the selected volumes occupy (plus a 5% margin).",
             "Free space on that filesystem, or select fewer volumes."),
    CheckDef("AU-C007", "privileges", E,
             "The tool runs as root (needed for an isolated Upgrade Side)",
             "Not root. A warning with isolation auto/directory (the Upgrade Side is then "
             "a working directory without isolation); an error with isolation = "
             "\"namespaces\".",
             "Run the daemon as root, or set [upgrade_side] isolation = \"directory\"."),
    CheckDef("AU-C008", "namespaces", E,
             "Linux namespaces are available (mount, network, PID, UTS; unshare)",
             "/proc/self/ns lacks a namespace type, or the `unshare` program is missing. A "
             "warning unless isolation = \"namespaces\".",
             "Install util-linux and use a kernel with namespaces, or use isolation "
             "\"directory\"."),
    CheckDef("AU-C009", "link-addresses", E,
             "The private link addresses are free and in one subnet",
             "host_address or side_address is already used on this host, or the two are "
             "equal or in different subnets. A warning when the user is another Active "
             "Upgrade instance's private link (several instances on one host).",
             "Choose unused addresses of one small subnet in [upgrade_side] (e.g. "
             "169.254.77.1/30 and 169.254.77.2/30)."),
    CheckDef("AU-C010", "services-exist", E, "Every service can be started",
             "A supervised service's command (or its health check's) is missing or not "
             "executable, or it, a folder or a link on its path could be changed by "
             "someone other than root (owned by another user, group/other-writable); or a "
             "systemd unit is unknown (or systemd is not running).",
             "Install the application or fix `command`/`unit` in the [[service]] table; "
             "`chown root: PATH` and `chmod go-w PATH` for the file or folder named."),
    CheckDef("AU-C011", "services-running", W, "Every enabled service is running now",
             "An enabled service is not running on Production (it will be started at merge "
             "anyway).",
             "Start it (`au service start NAME`) if it should be serving."),
    CheckDef("AU-C012", "services-stoppable", E, "Every service can be stopped",
             "Unknown stop signal, or a systemd unit that refuses manual stop.",
             "Fix stop_signal, or allow stopping the unit (RefuseManualStop=no)."),
    CheckDef("AU-C013", "action-files", E,
             "Every custom action file exists and is an executable file",
             "The file of an [[action]] is missing, not a regular file or not executable.",
             "Install the file and `chmod 0755` it, or remove the action."),
    CheckDef("AU-C014", "action-system-volume", E,
             "Every custom action file lies on a system volume",
             "The file is outside every system volume, so it would not be upgraded with the "
             "software (and the Upgrade Side would not see it).",
             "Move it onto a system volume, or select its folder as a system volume."),
    CheckDef("AU-C015", "action-permissions", E,
             "No custom action file, nor a folder or link on its path, is writable by anyone "
             "but root",
             "The file or a folder above it (owned by another user, or group/other-writable), "
             "or a link on its path made by another user or leading off the system volumes, "
             "could be changed to run anything as root.",
             "`chown root: PATH` and `chmod go-w PATH` for the file or folder named; replace a "
             "link by the file itself."),
    CheckDef("AU-C016", "readiness-actions", E, "Every readiness-check custom action passes",
             "A `control = \"readiness-check\"` action exited non-zero (its last stderr line "
             "says why) or timed out.",
             "Fix what the action reports (its output is in `au log`), then check again."),
    CheckDef("AU-C017", "packages-local", E,
             "Installers and packages the upgrade needs are present locally",
             "A path listed in [upgrade_side] packages is missing or unreadable; the Upgrade "
             "Side has no network to fetch it.",
             "Download the files to those paths before splitting."),
    CheckDef("AU-C018", "no-other-session", E, "No other session is in progress",
             "Another session has not finished (the engine is not Idle, or a session was "
             "left open).",
             "Finish or abort it (`au status`, then `au abort` / `au finish`)."),
    CheckDef("AU-C019", "backup-paths", W, "Backup paths lie on system volumes",
             "A [backup] path is outside every system volume: nothing is saved for it at "
             "merge.",
             "Fix the path or select its folder as a system volume."),
    CheckDef("AU-C020", "upgrade-side-up", E, "The Upgrade Side is up (partner state OS Up)",
             "The Upgrade Side is shut down, crashed or hung.",
             "Look at `au status` and `au log`; restart it with `au restart-upgrade-side`, "
             "or abort."),
    CheckDef("AU-C021", "packages-staged", W,
             "Packages are staged for the Upgrade Side's apt (it has no network)",
             "This host has apt, the Upgrade Side is isolated, and nothing is staged in "
             "AU_HOME/packages: apt-get there can install only what is already on the "
             "host.",
             "Run `au packages stage` (what `apt-get upgrade` would install) or "
             "`au packages stage NAME…`, before or during the split."),
)

BY_ID = {c.id: c for c in CHECKS}

ON_DEMAND = tuple(c.id for c in CHECKS if c.id != "AU-C020")
"""Run by ``au check`` (CheckReadiness)."""
FINAL = ON_DEMAND
"""Run at PrepareSplit; an error stops the split."""
UPGRADE_SIDE = ("AU-C020", "AU-C013", "AU-C014", "AU-C015", "AU-C016")
"""Run at PrepareMerge against the Upgrade Side; an error stops the merge."""


def troubleshooting_table() -> str:
    """The troubleshooting table of ``docs/troubleshooting.md`` (kept equal by a test)."""
    rows = ["| Id | Name | Severity | Checks | Cause | Fix |", "|---|---|---|---|---|---|"]
    for c in CHECKS:
        when = ", ".join(n for n, ids in (("on demand", ON_DEMAND), ("PrepareSplit", FINAL),
                                          ("PrepareMerge", UPGRADE_SIDE)) if c.id in ids)
        rows.append(f"| {c.id} | `{c.name}` | {c.severity} | {c.title} ({when}) | "
                    f"{c.cause} | {c.fix} |")
    return "\n".join(rows)
