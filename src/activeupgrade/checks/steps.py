"""Readiness-check steps of the requests (SPEC §9).

- CheckReadiness (``au check``): every host check; the report is stored and logged; a
  failure does not break anything.
- PrepareSplit: the same checks, final; an error-severity failure raises ``CheckFailed``
  naming the failed checks, so the request becomes Broken.
- PrepareMerge: the Upgrade Side checks, with the same rule.

The steps only read the host (readiness-check actions excepted, which are read-only by
contract), so they are idempotent: a rerun gives a fresh verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from activeupgrade.checks import catalogue
from activeupgrade.checks.catalogue import CheckSeverity
from activeupgrade.checks.runner import CheckEnv, Report, run_checks, save_report
from activeupgrade.config.model import Config, ControlType
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import CheckFailed
from activeupgrade.model.states import Severity, Side

if TYPE_CHECKING:
    from activeupgrade.platform.volumes.state import SyncState

BASE_TIMEOUT = 300.0
"""Seconds for the checks themselves (free-space walks the volumes)."""


def _timeout(cfg: Config) -> float:
    return BASE_TIMEOUT + sum(a.timeout + 5.0 for a in cfg.actions_of(ControlType.READINESS_CHECK))


def log_report(ctx: StepContext, report: Report) -> None:
    """One activity log entry per check, then the verdict."""
    for r in report.checks:
        if r.ok:
            severity, event = Severity.INFO, "check.pass"
        else:
            severity = Severity.ERROR if r.severity is CheckSeverity.ERROR else Severity.WARNING
            event = "check.fail"
        text = f"{r.id} {r.name}: {r.message}" + (f" — {r.action}" if r.action else "")
        ctx.write(event, text, severity=severity, details=r.to_dict())
    failed = [f"{r.id} {r.name}" for r in report.failed]
    warned = [r for r in report.checks if not r.ok and not r.blocking]
    ctx.write(
        "check.done",
        ("ready" if report.ready else "not ready: " + ", ".join(failed))
        + f" ({len(report.checks)} checks, {len(warned)} warning(s))",
        severity=Severity.NOTICE if report.ready else Severity.ERROR,
        details={"ready": report.ready, "failed": failed},
    )
    ctx.results.update(ready=report.ready, failed=failed, warnings=len(warned))


def _runner(ids: tuple[str, ...], side: Side, *, blocking: bool,
            sync: SyncState | None = None) -> Callable[[StepContext], None]:
    def run(ctx: StepContext) -> None:
        env = CheckEnv(
            instance=ctx.instance, store=ctx.store, config=ctx.config, state=ctx.state,
            session=ctx.session, side=side, step=ctx, sync=sync,
        )
        report = run_checks(env, ids)
        save_report(ctx.store, report)
        log_report(ctx, report)
        if blocking and not report.ready:
            names = ", ".join(f"{r.id} {r.name} ({r.message})" for r in report.failed)
            raise CheckFailed(
                f"readiness checks failed: {names}",
                hint="Follow the recommended action of each failed check (`au check` or "
                "docs/troubleshooting.md), then Retry.",
                details={"failed": [r.to_dict() for r in report.failed]},
            )

    return run


def on_demand(cfg: Config, sync: SyncState | None = None) -> list[Step]:
    return [Step("checks.readiness", _runner(catalogue.ON_DEMAND, Side.PRODUCTION,
                                             blocking=False, sync=sync),
                 timeout=_timeout(cfg), description="readiness checks")]


def final(cfg: Config, sync: SyncState | None = None) -> list[Step]:
    return [Step("checks.final", _runner(catalogue.FINAL, Side.PRODUCTION, blocking=True,
                                         sync=sync),
                 timeout=_timeout(cfg), description="final readiness checks")]


def upgrade_side(cfg: Config) -> list[Step]:
    return [Step("checks.upgrade-side", _runner(catalogue.UPGRADE_SIDE, Side.UPGRADE,
                                                blocking=True),
                 timeout=_timeout(cfg), description="readiness checks of the Upgrade Side",
                 side=Side.UPGRADE)]
