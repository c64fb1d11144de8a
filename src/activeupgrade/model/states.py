"""Closed vocabularies of the state model (SPEC §2)."""

from __future__ import annotations

from enum import StrEnum


class UpgradeState(StrEnum):
    """Where the host is in an active upgrade session."""

    IDLE = "Idle"
    """No session: the host is duplexed and runs its applications normally."""
    PREPARE_SPLIT = "PrepareSplit"
    """Final readiness check and bringing the B replicas up to date, then splitting."""
    SPLIT = "Split"
    """Production serves on the A replicas; the Upgrade Side is open for installing."""
    PREPARE_MERGE = "PrepareMerge"
    """Upgrade Side readiness checked; the applications move to the upgraded software."""
    MERGE = "Merge"
    """Applications run on the upgraded software; both replica sets are intact."""
    COMMIT = "Commit"
    """Old replicas resynchronised from the upgraded ones (point of no return)."""
    ABORT = "Abort"
    """Original software restored; the upgraded replicas resynchronised from it."""
    FINISH = "Finish"
    """Transient clean-up before returning to Idle."""

    @property
    def sides_exist(self) -> bool:
        """True while the host is divided into two sides (the partner exists)."""
        return self in (
            UpgradeState.PREPARE_SPLIT,
            UpgradeState.SPLIT,
            UpgradeState.PREPARE_MERGE,
            UpgradeState.MERGE,
        )


class Request(StrEnum):
    """What the engine executes; one operator action runs one or more requests."""

    IDLE = "Idle"
    """Nothing is running."""
    CHECK_READINESS = "CheckReadiness"
    """Readiness checks on demand."""
    PREPARE_SPLIT = "PrepareSplit"
    """Final readiness check; bring B replicas up to date."""
    EXECUTE_SPLIT = "ExecuteSplit"
    """Freeze B replicas for the Upgrade Side, start it, disable services there."""
    PREPARE_MERGE = "PrepareMerge"
    """Upgrade Side readiness; report Production changes since split."""
    EXECUTE_MERGE = "ExecuteMerge"
    """Stop on Production, switch system volumes, back up, start upgraded."""
    CONFIRM = "Confirm"
    """Record the operator's confirmation of the merge (ends the confirmation window)."""
    COMMIT = "Commit"
    """Resync old replicas from the upgraded ones."""
    ABORT = "Abort"
    """Restore the original software and resync."""
    FINISH = "Finish"
    """Remove session leftovers, verify duplex."""
    START = "Start"
    """Sub-request: application start steps."""
    STOP = "Stop"
    """Sub-request: application stop steps."""
    BACKUP = "Backup"
    """Sub-request: backup steps."""
    ADOPT = "Adopt"
    """Maintenance: a directory becomes a managed volume."""
    RELEASE = "Release"
    """Maintenance: a managed volume becomes a plain directory again."""
    RESYNC = "Resync"
    """Maintenance: the standby replica of a volume is brought up to date."""
    VERIFY = "Verify"
    """Maintenance: the two replicas of volumes are compared."""
    ATTACH = "Attach"
    """Maintenance: a volume's live path is made to show its replica again."""
    RESTART_UPGRADE_SIDE = "RestartUpgradeSide"
    """Maintenance: everything in the Upgrade Side is stopped, rebuilt and booted again."""
    EXEC = "Exec"
    """Maintenance: a command runs inside the Upgrade Side (``au exec``)."""


class OperationalState(StrEnum):
    """Whether the engine can take the next request."""

    READY = "Ready"
    """The last request completed; the next may start."""
    BUSY = "Busy"
    """A request is running."""
    BROKEN = "Broken"
    """The last request failed: fix the cause, then Retry (or Abort)."""


class PartnerState(StrEnum):
    """The Upgrade Side's condition, in the original's vocabulary."""

    NONE = "None"
    """No Upgrade Side exists (outside split/merge)."""
    OS_BOOTING = "OS Booting"
    """The Upgrade Side is being built and its services started."""
    OS_UP = "OS Up"
    """The Upgrade Side runs and answers its liveness probe."""
    OS_REBOOTING = "OS Rebooting"
    """The Upgrade Side is being restarted."""
    OS_SHUTTING_DOWN = "OS Shutting Down"
    """The Upgrade Side is being stopped."""
    OS_SHUT_DOWN = "OS Shut Down"
    """The Upgrade Side is stopped (its replicas are kept)."""
    OS_CRASHED = "OS Crashed"
    """The Upgrade Side's init process died unexpectedly."""
    HUNG = "Hung"
    """The Upgrade Side's liveness probe fails; shown as ``Hung: <last state>``."""


class Side(StrEnum):
    """The two sides of a split host (values as in ``ACTIVE_UPGRADE_SIDE``)."""

    PRODUCTION = "Production"
    """Where the critical applications serve on the original software."""
    UPGRADE = "Upgrade"
    """The isolated side where updates are installed and tested."""


class OperatorAction(StrEnum):
    """What an operator can ask for (CLI verbs, API actions, console buttons)."""

    CHECK = "check"
    """Run the readiness checks (Idle only; repeatable)."""
    SPLIT = "split"
    """Divide the host into a Production Side and an Upgrade Side."""
    MERGE = "merge"
    """Move the applications onto the upgraded software."""
    CONFIRM = "confirm"
    """Confirm the upgrade within the confirmation window after merge (``[merge]
    confirm_within``); without it the daemon aborts from Merge by itself. Offered only
    while a window is open; Commit confirms too."""
    COMMIT = "commit"
    """Make the upgrade permanent: resync old replicas from new."""
    ABORT = "abort"
    """Restore the original software; resync the upgraded replicas."""
    FINISH = "finish"
    """Clean up and return to Idle."""
    RETRY = "retry"
    """Re-execute the failed request from its failed step."""


class Operation(StrEnum):
    """A maintenance operation: it changes (or reads deeply) the platform outside the
    session's own requests, so it takes the engine's one Busy slot, is journaled and logged
    like a request, and leaves the upgrade state as it was."""

    ADOPT = "adopt"
    """Adopt a directory as a managed volume (resumes an interrupted adoption)."""
    RELEASE = "release"
    """Give back a plain directory with the live content; forget the volume."""
    RESYNC = "resync"
    """Bring a volume's standby replica up to date with the live one."""
    VERIFY = "verify"
    """Compare the two replicas of volumes."""
    ATTACH = "attach"
    """Make a volume's live path show the replica it must show again (a mount removed
    behind the tool's back, a reboot before the boot unit ran)."""
    SERVICE_START = "service-start"
    """Start an application service and wait until it is healthy."""
    SERVICE_STOP = "service-stop"
    """Stop an application service (its listening sockets stay held)."""
    SERVICE_RELEASE = "service-release"
    """Stop a service and end its keeper: its listening sockets close."""
    RESTART_UPGRADE_SIDE = "restart-upgrade-side"
    """Stop everything in the Upgrade Side, rebuild it and boot it again."""
    EXEC = "exec"
    """Run a command inside the Upgrade Side."""

    @property
    def request(self) -> Request:
        """The request value the status shows while the operation runs."""
        return _OPERATION_REQUEST[self]


_OPERATION_REQUEST: dict[Operation, Request] = {
    Operation.ADOPT: Request.ADOPT,
    Operation.RELEASE: Request.RELEASE,
    Operation.RESYNC: Request.RESYNC,
    Operation.VERIFY: Request.VERIFY,
    Operation.ATTACH: Request.ATTACH,
    Operation.SERVICE_START: Request.START,
    Operation.SERVICE_STOP: Request.STOP,
    Operation.SERVICE_RELEASE: Request.STOP,
    Operation.RESTART_UPGRADE_SIDE: Request.RESTART_UPGRADE_SIDE,
    Operation.EXEC: Request.EXEC,
}


class SessionOutcome(StrEnum):
    """How a session ended (``au history``)."""

    COMMITTED = "committed"
    """The upgrade was made permanent."""
    ABORTED = "aborted"
    """The original software was restored."""


class Severity(StrEnum):
    """Activity log severities, in increasing order."""

    DEBUG = "debug"
    """Detail for troubleshooting."""
    INFO = "info"
    """Normal progress."""
    NOTICE = "notice"
    """Normal but significant (a state change, a measurement)."""
    WARNING = "warning"
    """Something the operator should know; nothing failed."""
    ERROR = "error"
    """A failure: a request became Broken or a check failed."""
    CRITICAL = "critical"
    """A failure that may leave the host unprotected."""

    @property
    def rank(self) -> int:
        return list(Severity).index(self)
