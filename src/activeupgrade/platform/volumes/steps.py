"""Volume steps of the requests (filled in by the volumes part)."""

from __future__ import annotations

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step


def prepare_split(cfg: Config) -> list[Step]:
    return []


def execute_split(cfg: Config) -> list[Step]:
    return []


def prepare_merge(cfg: Config) -> list[Step]:
    return []


def execute_merge(cfg: Config) -> list[Step]:
    return []


def commit(cfg: Config) -> list[Step]:
    return []


def abort_switch_back(cfg: Config) -> list[Step]:
    return []


def abort_resync(cfg: Config) -> list[Step]:
    return []


def finish(cfg: Config) -> list[Step]:
    return []
