"""The one error hierarchy of Active Upgrade.

Every error a user can cause or meet is a class here, carrying a message, a hint (what to
do) and an exit code. Errors become output in exactly one place: the CLI edge
(``cli/main.py``) and the API edge (``api/server.py``).

::

    AUError (1)                       any failure the tool explains
    ├── UsageError (2)                bad command-line arguments
    ├── ConfigError (3)               bad configuration file: file, line, field, expected
    ├── StateError (4)                action not allowed in the current state
    ├── InstanceError (5)             instance folder, lock, another engine running
    ├── StoreError (6)                durable store unreadable or from a newer version
    ├── DaemonError (7)               daemon unreachable or answered with an error
    ├── FilesystemError (8)           a filesystem the tool writes is read-only or failing
    │   └── DiskFullError (9)         no space left on it
    ├── StepError (10)                a step of a request failed (request becomes Broken)
    │   ├── StepTimeout (11)          a step exceeded its deadline
    │   └── Interrupted (12)          the engine stopped in the middle of a step
    ├── VolumeError (20)              volume adoption, replicas, resync, verify
    │   └── VerifyMismatch (21)       replicas differ
    ├── SideError (30)                Upgrade Side: namespaces, shell, exec
    │   └── StagingError (31)         packages staged for the Upgrade Side
    ├── ServiceError (40)             application services: start, stop, health
    │   └── KeeperGone (41)           a service's keeper does not answer
    ├── ActionError (50)              custom actions: refused file, failure, timeout
    ├── CheckFailed (60)              readiness checks with errors
    ├── ProcessError (70)             a subprocess failed (signal, not found, exit N)
    └── SecurityError (80)            unsafe file ownership/mode, bad token

Exit codes: 0 success, 1 generic, 2 usage, 3-7 input/instance/daemon, 8-9 filesystems, 10-12 request
failures, 20-29 volumes, 30-39 Upgrade Side, 40-49 services, 50-59 actions, 60 readiness,
70 subprocess, 80 security, 130 interrupted by the operator (Ctrl-C).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar


class AUError(Exception):
    """Base class: a failure the tool can explain to the operator."""

    exit_code: ClassVar[int] = 1
    default_hint: ClassVar[str] = ""

    def __init__(self, message: str, *, hint: str = "", details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint
        self.details: dict[str, Any] = dict(details or {})

    @property
    def kind(self) -> str:
        """The class name, used as a stable error identifier in the API."""
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.kind,
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
            "details": self.details,
        }

    def __str__(self) -> str:
        return self.message


class UsageError(AUError):
    """Bad command-line arguments or a malformed API request."""

    exit_code = 2
    default_hint = "Run the command with --help to see its arguments."


class ConfigError(AUError):
    """A configuration file is malformed; the message names file, line and field."""

    exit_code = 3
    default_hint = "Fix the file and run `au config validate FILE`."


class StateError(AUError):
    """The operator action is not allowed in the current state."""

    exit_code = 4


class InstanceError(AUError):
    """The instance folder cannot be used, or another engine holds it."""

    exit_code = 5


class StoreError(AUError):
    """The state database is unreadable or from a newer version."""

    exit_code = 6


class DaemonError(AUError):
    """The daemon cannot be reached or answered with an unexpected error."""

    exit_code = 7
    default_hint = "Check `au log` and the daemon log under AU_HOME/logs/daemon.log."


class FilesystemError(AUError):
    """A filesystem the tool writes is read-only or fails (input/output error)."""

    exit_code = 8


class DiskFullError(FilesystemError):
    """No space is left on a filesystem the tool writes (its state, logs or replicas)."""

    exit_code = 9


def os_error(exc: OSError, doing: str) -> AUError | None:
    """The error of the hierarchy for a filesystem fault met while ``doing`` something
    (ENOSPC, EDQUOT, EROFS, EIO); None for any other OSError."""
    import errno

    where = exc.filename or ""
    folder = os.path.dirname(str(where)) or str(where) or "."
    at = f" ({where})" if where else ""
    details = {"errno": errno.errorcode.get(exc.errno or 0, ""), "file": str(where)}
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            f"cannot {doing}: no space left on the filesystem{at}",
            hint=f"Free space there (`df -h {folder}` shows it), then run the command again "
            "(a Broken request: `au retry`).", details=details)
    if exc.errno == errno.EROFS:
        return FilesystemError(
            f"cannot {doing}: the filesystem is read-only{at}",
            hint=f"Remount it read-write (`findmnt -T {folder}`), then run the command again.",
            details=details)
    if exc.errno == errno.EIO:
        return FilesystemError(
            f"cannot {doing}: input/output error{at}; the disk may be failing",
            hint="Look at the kernel log (`journalctl -k`), fix or replace the disk, then run "
            "the command again.", details=details)
    return None


class StepError(AUError):
    """A step of a request failed; the request becomes Broken with this reason."""

    exit_code = 10


class StepTimeout(StepError):
    """A step exceeded its deadline."""

    exit_code = 11


class Interrupted(StepError):
    """A step was stopped by an operator abort or a crash of the tool."""

    exit_code = 12


class VolumeError(AUError):
    """Volume adoption, replicas, live path, resync or release failed."""

    exit_code = 20


class VerifyMismatch(VolumeError):
    """The two replicas of a volume differ."""

    exit_code = 21
    default_hint = "Resynchronise with `au volume resync NAME` or finish the session."


class SideError(AUError):
    """The Upgrade Side cannot be built, entered or stopped."""

    exit_code = 30


class StagingError(SideError):
    """Packages cannot be staged for the Upgrade Side."""

    exit_code = 31


class ServiceError(AUError):
    """An application service cannot be started, stopped or probed."""

    exit_code = 40


class KeeperGone(ServiceError):
    """A service's keeper does not answer (it is started again)."""

    exit_code = 41


class ActionError(AUError):
    """A custom action was refused, failed or timed out."""

    exit_code = 50


class CheckFailed(AUError):
    """Readiness checks of severity error failed."""

    exit_code = 60
    default_hint = ("Follow the recommended action of each failed check (listed above, and in "
                    "`au log --event check.fail`), then run `au check` again.")


class ProcessError(AUError):
    """A subprocess failed: not found, killed by a signal or exit N."""

    exit_code = 70


class SecurityError(AUError):
    """A file is writable by others than root, or a token is wrong."""

    exit_code = 80


def all_error_classes() -> list[type[AUError]]:
    """Every error class, base first; used to document the exit-code table."""
    seen: list[type[AUError]] = []

    def walk(cls: type[AUError]) -> None:
        seen.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(AUError)
    return seen


def error_from_dict(data: dict[str, Any]) -> AUError:
    """Rebuild an error sent over the API, keeping its class when it is one of ours."""
    by_name = {cls.__name__: cls for cls in all_error_classes()}
    cls = by_name.get(str(data.get("error", "")), AUError)
    return cls(
        str(data.get("message", "unknown error")),
        hint=str(data.get("hint", "")),
        details=dict(data.get("details") or {}),
    )
