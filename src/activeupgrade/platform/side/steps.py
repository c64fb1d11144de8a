"""Upgrade Side steps of the requests: start at ExecuteSplit; at PrepareMerge the list of
what it wrote outside the managed volumes; stop at ExecuteMerge and Abort (the list once
more, then the scratch is discarded); remove at Finish. Idempotent: each reads the side's
record first."""

from __future__ import annotations

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.model.states import Severity, Side
from activeupgrade.platform.side import namespace
from activeupgrade.platform.side.writes import written
from activeupgrade.platform.volumes.state import SyncState


def start_side(ctx: StepContext, sync: SyncState | None = None) -> None:
    rec = namespace.start(ctx.instance, ctx.store, ctx.config, ctx.session, sync)
    if rec["mode"] == namespace.DIRECTORY:
        ctx.write("side.up", "Upgrade Side up as a working directory "
                  f"{rec.get('workdir')}; NOT isolated: " + "; ".join(rec.get("missing", [])),
                  severity=Severity.WARNING, details=rec)
    else:
        ctx.write("side.up", f"Upgrade Side up: init pid {rec.get('pid')}, hostname "
                  f"{rec.get('hostname')}, private link {rec.get('host_address')} ↔ "
                  f"{rec.get('side_address')}", details=rec)
        for note in rec.get("notes", []):
            ctx.write("side.view.note", f"Upgrade Side view: {note}", severity=Severity.NOTICE)
    ctx.results["partner"] = "OS Up"


def report_writes(ctx: StepContext, when: str) -> None:
    """Log what the Upgrade Side wrote outside the managed volumes (never kept)."""
    found = written(ctx.instance)
    if not found.exists:
        return
    n = found.counts.get("outside", 0) + found.counts.get("data", 0)
    ctx.write("side.writes", f"{when}: {found.summary()}",
              severity=Severity.WARNING if n else Severity.INFO, details=found.to_dict())
    ctx.results["written_outside"] = found.counts


def writes_step(ctx: StepContext) -> None:
    report_writes(ctx, "before merge")


def stop_side(ctx: StepContext) -> None:
    if namespace.read(ctx.instance):
        report_writes(ctx, "discarded with the Upgrade Side")
        namespace.stop(ctx.instance)
        ctx.write("side.down", "Upgrade Side shut down")


def remove_side(ctx: StepContext) -> None:
    namespace.remove(ctx.instance)


def start(cfg: Config, sync: SyncState | None = None) -> list[Step]:
    """``sync``: the daemon's state (what the side's start keeps from one to the next)."""
    def run(ctx: StepContext) -> None:
        start_side(ctx, sync)

    return [Step("side.start", run, 120, "build and boot the Upgrade Side", Side.UPGRADE)]


def prepare_merge(cfg: Config) -> list[Step]:
    return [
        Step("side.writes", writes_step, 300, "list what the Upgrade Side wrote outside the "
             "managed volumes (not kept)", Side.UPGRADE),
    ]


def stop(cfg: Config) -> list[Step]:
    return [Step("side.stop", stop_side, 60, "shut the Upgrade Side down", Side.UPGRADE)]


def cleanup(cfg: Config) -> list[Step]:
    return [Step("side.cleanup", remove_side, 60, "remove the Upgrade Side", Side.UPGRADE)]
