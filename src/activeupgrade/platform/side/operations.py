"""What the operator does on the Upgrade Side outside the engine's maintenance operations
(``au exec`` and ``au restart-upgrade-side`` are those: ``session/operations.py``).

``open_shell`` / ``close_shell``: ``au shell`` runs on the operator's terminal; the activity
log records who opened it, as whom, its exit value and its duration. ``writes``: what the
side wrote outside the managed volumes (``au side writes``). The API routes only call these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from activeupgrade.activity import ActivityLog, Context
from activeupgrade.errors import SideError, UsageError
from activeupgrade.instance import Instance
from activeupgrade.model.states import Severity, Side
from activeupgrade.platform.side import namespace
from activeupgrade.platform.side.writes import Writes, written

SHELL_PROMPT = "[upgrade side] \\u@\\h:\\w\\$ "


@dataclass(frozen=True)
class Where:
    """The session and state the operation happens in (for the log entries)."""

    session: str = ""
    state: str = ""

    def ctx(self) -> Context:
        return Context(self.session, Side.UPGRADE.value, self.state, "")


def _require_up(instance: Instance) -> dict[str, Any]:
    rec = namespace.read(instance)
    if not rec or rec.get("state") != namespace.SideState.UP:
        raise SideError("the Upgrade Side is not up"
                        + (f" (it is {rec['state']})" if rec.get("state") else ""),
                        hint="It exists in Split and PrepareMerge; see `au status`, and "
                        "`au restart-upgrade-side` rebuilds it.")
    return rec


def open_shell(instance: Instance, log: ActivityLog, where: Where, *, user: str = "",
               terminal: str = "", operator: str = "") -> dict[str, Any]:
    """``au shell`` begins: logged; returns the command the operator's terminal runs."""
    _require_up(instance)
    prefix = namespace.enter_argv(instance, user)
    env, cwd = namespace.exec_env(instance)
    if prefix:
        prefix = [*prefix[:-1], "--env", f"PS1={SHELL_PROMPT}", "--"]
        argv = [*prefix, "/bin/sh", "-c", 'exec "${SHELL:-/bin/sh}" -i']
    else:
        env["PS1"] = SHELL_PROMPT
        argv = ["/bin/sh", "-c", 'exec "${SHELL:-/bin/sh}" -i']
    node = log.write("side.shell", "au shell on the Upgrade Side opened"
                     + (f" by {operator}" if operator else "")
                     + (f" on {terminal}" if terminal else "")
                     + (f" (as {user})" if user else ""), severity=Severity.NOTICE,
                     ctx=where.ctx(), details={"user": user or "root", "terminal": terminal,
                                               "operator": operator})
    return {"entry": node, "argv": argv, "env": env, "cwd": cwd}


def close_shell(log: ActivityLog, where: Where, entry: int, returncode: int,
                seconds: float) -> None:
    """``au shell`` ended: its exit value and duration, under the entry that opened it."""
    opened = log.get(entry)
    if opened is None or opened.event != "side.shell":
        raise UsageError(f"no au shell was opened as log entry {entry}")
    log.write("side.shell.end", f"au shell ended: exit {returncode} after {seconds:.1f}s",
              parent=entry, ctx=where.ctx(),
              details={"returncode": returncode, "seconds": round(seconds, 3)})
    log.update_details(entry, {"returncode": returncode, "seconds": round(seconds, 3)})


def writes(instance: Instance) -> Writes:
    """What the Upgrade Side wrote outside the managed volumes (nothing of it is kept)."""
    return written(instance)
