"""The seam between the engine and the platform parts.

The engine knows nothing of volumes, services or actions: it asks a Platform for the steps
of each request and for live facts (partner state, duplex). ``session/host.py`` is the real
one; tests give the engine small platforms that do real work in temporary trees.
"""

from __future__ import annotations

from typing import Any, Protocol

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step
from activeupgrade.model.states import Operation, PartnerState, Request


class Platform(Protocol):
    def session_config(self, session: str, config_path: str, *, stage: bool) -> Config:
        """The configuration of ``session``: staged copies when ``stage`` is False (after a
        restart), else copy ``config_path`` and its children to the staging area first.
        ``config_path`` "" means a session without a file (all adopted volumes)."""

    def idle_config(self, config_path: str) -> Config:
        """The configuration an Idle check or plan looks at (nothing is staged)."""

    def steps(self, request: Request, config: Config) -> list[Step]:
        """The ordered steps of ``request``; names are stable across calls."""

    def operation_steps(self, operation: Operation, args: dict[str, Any]) -> list[Step]:
        """The steps of a maintenance operation with ``args``; bad arguments are refused
        here (UsageError), before the operation takes the Busy slot."""

    def partner(self) -> tuple[PartnerState, str]:
        """The Upgrade Side's state and a detail (``Hung`` carries the last state)."""

    def facts(self) -> dict[str, Any]:
        """Live facts for the status bar: at least ``duplex`` (bool) and ``resync``."""

    def end_session(self, session: str) -> None:
        """Forget the session's staged files (called when it returns to Idle)."""
