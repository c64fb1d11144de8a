"""Running a program inside the Upgrade Side (actions, ``systemctl`` of the Upgrade Side).

The Upgrade Side part (``platform/side/namespace.py``) owns how to enter it; this module
adds what the actions part needs: the side must be up, and callers must know when it is
not isolated (directory mode: the command runs on the host with the Upgrade Side's
environment, so nothing that would change Production may be run that way).
"""

from __future__ import annotations

from dataclasses import dataclass

from activeupgrade.errors import SideError
from activeupgrade.instance import Instance
from activeupgrade.platform.side import namespace


@dataclass(frozen=True)
class Inside:
    """How to run a command on the Upgrade Side."""

    prefix: list[str]
    """argv prefix (``nsenter …``), empty when the side is a directory."""
    env: dict[str, str]
    """The Upgrade Side's environment (includes where its replicas are)."""
    cwd: str | None
    isolated: bool
    """False in directory mode: the command would act on the host."""


def enter(instance: Instance) -> Inside:
    """How to run a command inside the Upgrade Side now; SideError if it is not up."""
    rec = namespace.read(instance)
    if rec.get("state") != namespace.SideState.UP:
        raise SideError(
            "the Upgrade Side is not up"
            + (f" (it is {rec['state']})" if rec.get("state") else ""),
            hint="It runs in Split and PrepareMerge; `au restart-upgrade-side` rebuilds it.",
        )
    prefix = namespace.enter_argv(instance)
    env, cwd = namespace.exec_env(instance)
    return Inside(prefix, env, cwd, isolated=bool(prefix))


def enter_argv(instance: Instance) -> list[str]:
    """argv prefix for running a command inside the Upgrade Side of ``instance``."""
    return enter(instance).prefix


def upgrade_side_exists(instance: Instance) -> bool:
    """True while the host is split: an Upgrade Side was started (ExecuteSplit) and has not
    been stopped yet (merge or abort stop it). A crashed or hung side still counts: its
    replicas are still apart from the live ones."""
    rec = namespace.read(instance)
    return bool(rec) and rec.get("state") not in (None, "", namespace.SideState.SHUT_DOWN)
