"""Application service steps of the requests (filled in by the services part)."""

from __future__ import annotations

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step


def disable_on_upgrade_side(cfg: Config) -> list[Step]:
    return []


def stop_production(cfg: Config) -> list[Step]:
    return []


def restore_startup(cfg: Config) -> list[Step]:
    return []


def start_upgraded(cfg: Config) -> list[Step]:
    return []


def stop_for_abort(cfg: Config) -> list[Step]:
    return []


def start_for_abort(cfg: Config) -> list[Step]:
    return []
