"""What a probe is given (``CheckEnv``) and what it answers (``Verdict``).

Each readiness check is a probe (``probes/``) that looks at the host; ``runner.py`` runs
them and keeps the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from activeupgrade.checks.catalogue import CheckSeverity
from activeupgrade.config.model import Config
from activeupgrade.instance import Instance
from activeupgrade.model.states import Side, UpgradeState
from activeupgrade.store.db import Store

if TYPE_CHECKING:
    from activeupgrade.engine.steps import StepContext
    from activeupgrade.platform.volumes.state import SyncState


@dataclass
class CheckEnv:
    """What a probe may look at."""

    instance: Instance
    store: Store
    config: Config
    state: UpgradeState = UpgradeState.IDLE
    session: str = ""
    side: Side = Side.PRODUCTION
    """The side the checks are about (Upgrade for the PrepareMerge checks)."""
    step: StepContext | None = None
    """The running step: readiness-check actions run under it and log there."""
    run_actions: bool = True
    """False for a read-only plan: readiness-check actions are listed, not run."""
    dry_run: bool = False
    """Actions run with ACTIVE_UPGRADE_DRY_RUN=1."""
    sync: SyncState | None = None
    """The daemon's volume sync state: figures without a walk of the trees (None: a
    one-off caller, figures computed now)."""


@dataclass
class Verdict:
    """A probe's answer."""

    ok: bool
    message: str
    severity: CheckSeverity | None = None
    """Overrides the catalogue's severity (a few checks soften to a warning)."""
    details: dict[str, Any] = field(default_factory=dict)


Probe = Callable[[CheckEnv], Verdict]
