"""Backup steps (filled in by the services/actions part)."""

from __future__ import annotations

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step


def save(cfg: Config) -> list[Step]:
    return []
