"""The real Platform: this host's volumes, Upgrade Side, services and actions.

The staged configuration of a session is also kept in the store (namespace ``staged``): if
its copy in the staging area goes missing, it is written there again, so that a session
can always be continued, aborted and finished.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from activeupgrade.config import loader, staging
from activeupgrade.config.model import Config
from activeupgrade.engine.status import load_status
from activeupgrade.engine.steps import Step
from activeupgrade.errors import ConfigError
from activeupgrade.instance import Instance
from activeupgrade.model.states import Operation, PartnerState, Request
from activeupgrade.platform.side import partner
from activeupgrade.platform.volumes import checkpoint, registry
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.session import operations, recipe
from activeupgrade.store.db import Store

STAGED = "staged"
"""Store namespace: ``<session>`` → the staged files (name → text) of that session."""

class HostPlatform:
    def __init__(self, instance: Instance, store: Store) -> None:
        self.instance = instance
        self.store = store
        self.sync = SyncState()
        """The volumes' sync state (change tracking, pending-resync figures): owned here,
        for the daemon's lifetime, and handed to every volume step."""
        self.checkpoints = checkpoint.Checkpoints(store, instance)
        """What the status shows of the data checkpoints (the writes since each)."""

    def _without_file(self) -> Config:
        return Config(
            description="session without a configuration file: every adopted volume",
            volumes=registry.adopted_specs(self.store),
        )

    def _load(self, path: Path, source: str) -> Config:
        cfg = loader.load_file(path)
        return replace(cfg, source=source)

    def idle_config(self, config_path: str) -> Config:
        if not config_path:
            return self._without_file()
        return self._load(Path(config_path), config_path)

    def session_config(self, session: str, config_path: str, *, stage: bool) -> Config:
        if not config_path:
            return self._without_file()
        original = Path(config_path)
        if stage:
            staged = staging.stage(self.instance, session, original)
            files = {p.name: p.read_text(errors="replace") for p in staged.parent.iterdir()
                     if p.is_file()}
            self.store.put_doc(STAGED, session, {"top": staged.name, "files": files})
        else:
            staged = staging.staged(self.instance, session, original)
            if not staged.exists():
                self._restage(session, config_path)
        return self._load(staged, config_path)

    def _restage(self, session: str, config_path: str) -> None:
        doc = self.store.get_doc(STAGED, session)
        if not isinstance(doc, dict) or not doc.get("files"):
            raise ConfigError(
                f"the staged copy of {config_path} for session {session} is missing",
                hint=f"It should be under {self.instance.staging / session}; abort the "
                "session (it then runs without that file's services and actions).",
            )
        staging.restore(self.instance, session, dict(doc["files"]))

    def steps(self, request: Request, config: Config) -> list[Step]:
        return recipe.request_steps(request, config, self.sync)

    def operation_steps(self, operation: Operation, args: dict[str, Any]) -> list[Step]:
        s = load_status(self.store)

        def config_of() -> Config:
            # The session's staged configuration during a session, else the loaded one.
            if s.session:
                return self.session_config(s.session, s.config, stage=False)
            return self.idle_config(s.config)

        return operations.steps_for(self.instance, self.store, operation, args,
                                    session=s.session, config_of=config_of,
                                    sync=self.sync)

    def partner(self) -> tuple[PartnerState, str]:
        return partner.partner_state(self.instance)

    def facts(self) -> dict[str, Any]:
        return {**registry.facts(self.store, self.sync), **self.checkpoints.facts()}

    def end_session(self, session: str) -> None:
        staging.forget(self.instance, session)
        self.store.delete_doc(STAGED, session)
