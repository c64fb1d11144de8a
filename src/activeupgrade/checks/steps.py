"""Readiness-check steps of the requests (filled in by the readiness checks part)."""

from __future__ import annotations

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step


def on_demand(cfg: Config) -> list[Step]:
    return []


def final(cfg: Config) -> list[Step]:
    return []


def upgrade_side(cfg: Config) -> list[Step]:
    return []
