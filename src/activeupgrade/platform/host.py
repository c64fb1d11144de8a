"""The real Platform: this host's volumes, Upgrade Side, services and actions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from activeupgrade.config import loader, staging
from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step
from activeupgrade.errors import ConfigError
from activeupgrade.instance import Instance
from activeupgrade.model.states import PartnerState, Request, UpgradeState
from activeupgrade.platform import recipe
from activeupgrade.platform.side import partner
from activeupgrade.platform.volumes import registry
from activeupgrade.store.db import Store


class HostPlatform:
    def __init__(self, instance: Instance, store: Store) -> None:
        self.instance = instance
        self.store = store

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
        else:
            staged = staging.staged(self.instance, session, original)
            if not staged.exists():
                raise ConfigError(
                    f"the staged copy of {config_path} for session {session} is missing",
                    hint=f"It should be under {self.instance.staging / session}; abort the "
                    "session if it was removed.",
                )
        return self._load(staged, config_path)

    def steps(
        self, request: Request, config: Config, abort_from: UpgradeState | None
    ) -> list[Step]:
        return recipe.request_steps(request, config, abort_from)

    def partner(self) -> tuple[PartnerState, str]:
        return partner.partner_state(self.instance)

    def facts(self) -> dict[str, Any]:
        return dict(registry.facts(self.store))

    def end_session(self, session: str) -> None:
        staging.forget(self.instance, session)
