"""Upgrade Side steps of the requests: start at ExecuteSplit, stop at ExecuteMerge and
Abort, remove at Finish. Idempotent: each reads the side's record first."""

from __future__ import annotations

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.model.states import Severity, Side
from activeupgrade.platform.side import namespace


def start_side(ctx: StepContext) -> None:
    rec = namespace.start(ctx.instance, ctx.store, ctx.config, ctx.session)
    if rec["mode"] == namespace.DIRECTORY:
        ctx.write("side.up", "Upgrade Side up as a working directory "
                  f"{rec.get('workdir')}; NOT isolated: " + "; ".join(rec.get("missing", [])),
                  severity=Severity.WARNING, details=rec)
    else:
        ctx.write("side.up", f"Upgrade Side up: init pid {rec.get('pid')}, hostname "
                  f"{rec.get('hostname')}, private link {rec.get('host_address')} ↔ "
                  f"{rec.get('side_address')}", details=rec)
    ctx.results["partner"] = "OS Up"


def stop_side(ctx: StepContext) -> None:
    if namespace.read(ctx.instance):
        namespace.stop(ctx.instance)
        ctx.write("side.down", "Upgrade Side shut down")


def remove_side(ctx: StepContext) -> None:
    namespace.remove(ctx.instance)


def start(cfg: Config) -> list[Step]:
    return [Step("side.start", start_side, 120, "build and boot the Upgrade Side", Side.UPGRADE)]


def stop(cfg: Config) -> list[Step]:
    return [Step("side.stop", stop_side, 60, "shut the Upgrade Side down", Side.UPGRADE)]


def cleanup(cfg: Config) -> list[Step]:
    return [Step("side.cleanup", remove_side, 60, "remove the Upgrade Side", Side.UPGRADE)]
