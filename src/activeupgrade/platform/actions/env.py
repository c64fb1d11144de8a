"""The environment a custom action runs with, and ``%NAME%`` substitution (SPEC §6).

The four variables of the original keep their names and values; ours follow them:

- ``ACTIVE_UPGRADE_STATE``: the upgrade state shown in the status bar (``Split`` while
  ExecuteSplit runs, ``Merge`` while ExecuteMerge runs, as the original showed them).
- ``ACTIVE_UPGRADE_REQUEST``: what the engine executes: the request, or ``Stop``,
  ``Start`` or ``Backup`` while an application-control or backup phase runs its steps
  (the original's sub-requests).
- ``ACTIVE_UPGRADE_HW_SPLIT``: the original said ``Yes`` while the two hardware modules of
  the fault-tolerant server ran apart (split mode). Here: ``Yes`` while the host is split,
  that is while an Upgrade Side exists — from the moment ExecuteSplit starts it until it is
  stopped at merge or abort — and ``No`` otherwise. An action can use it to know whether
  the Upgrade Side's replicas are separate from the live ones right now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from activeupgrade import proc
from activeupgrade.model.states import Request, Side, UpgradeState

_VARIABLE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")


@dataclass(frozen=True)
class ActionContext:
    """What the action is told about the moment it runs in."""

    side: Side
    state: UpgradeState
    request: Request
    session: str
    attempt: int
    config: str
    dry_run: bool = False
    host_split: bool = False
    """An Upgrade Side exists (ACTIVE_UPGRADE_HW_SPLIT=Yes)."""


def action_variables(c: ActionContext) -> dict[str, str]:
    """The ``ACTIVE_UPGRADE_*`` variables, exactly as SPEC §6 names them."""
    return {
        "ACTIVE_UPGRADE_SIDE": c.side.value,
        "ACTIVE_UPGRADE_STATE": c.state.value,
        "ACTIVE_UPGRADE_REQUEST": c.request.value,
        "ACTIVE_UPGRADE_HW_SPLIT": "Yes" if c.host_split else "No",
        "ACTIVE_UPGRADE_SESSION": c.session,
        "ACTIVE_UPGRADE_ATTEMPT": str(c.attempt),
        "ACTIVE_UPGRADE_CONFIG": c.config,
        "ACTIVE_UPGRADE_DRY_RUN": "1" if c.dry_run else "0",
    }


def action_env(c: ActionContext) -> dict[str, str]:
    """The whole explicit environment of the action's process."""
    return proc.base_env(action_variables(c))


def substitute(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Replace ``%NAME%`` by the variable's value; unknown names stay as written.

    Each argument stays one argument whatever the value holds: no shell is involved.
    """
    return [_VARIABLE.sub(lambda m: env.get(m.group(1), m.group(0)), a) for a in args]
