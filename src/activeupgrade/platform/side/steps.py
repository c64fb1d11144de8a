"""Upgrade Side steps of the requests (filled in by the volumes/sides part)."""

from __future__ import annotations

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step


def start(cfg: Config) -> list[Step]:
    return []


def stop(cfg: Config) -> list[Step]:
    return []


def cleanup(cfg: Config) -> list[Step]:
    return []
