"""Custom action steps of the requests (filled in by the custom actions part)."""

from __future__ import annotations

from activeupgrade.config.model import Config, ControlType, Timing
from activeupgrade.engine.steps import Step
from activeupgrade.model.states import Request, Side


def advanced(
    cfg: Config, request: Request, side: Side, timings: tuple[Timing, ...]
) -> list[Step]:
    return []


def control(cfg: Config, control: ControlType, side: Side, request: Request) -> list[Step]:
    return []
