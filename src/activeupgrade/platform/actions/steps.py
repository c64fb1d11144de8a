"""Custom action steps of the requests (SPEC §6).

``session/recipe.py`` places these steps (and ``session/plan.py`` reads the same recipe
back, so ``au plan`` lists exactly what they will run, in their order). Readiness-check
actions run inside the readiness checks (``run_readiness_actions``).
"""

from __future__ import annotations

from activeupgrade.config.model import ActionSpec, Config, ControlType, Timing
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.model.states import Request, Side
from activeupgrade.platform.actions.runner import ActionResult, run_action
from activeupgrade.platform.volumes import registry


def step_name(spec: ActionSpec, side: Side) -> str:
    """Stable step name of an action on a side, e.g. ``actions.advanced:notify@Upgrade``."""
    return f"actions.{spec.control.value}:{spec.name}@{side.value}"


ABORT_NS = "actions-abort"
"""Store namespace: ``<session>`` → the applications were stopped by an abort from merge."""


def _applies(ctx: StepContext, spec: ActionSpec) -> bool:
    """At Abort, stop/start-application actions only run when the applications move back
    (abort from merge); from split the applications never stopped."""
    if ctx.request is not Request.ABORT:
        return True
    if spec.control is ControlType.STOP_APPLICATION:
        if registry.merged(ctx.store):
            ctx.store.put_doc(ABORT_NS, ctx.session, {"stopped": True})
        return ctx.store.get_doc(ABORT_NS, ctx.session) is not None
    if spec.control is ControlType.START_APPLICATION:
        return ctx.store.get_doc(ABORT_NS, ctx.session) is not None
    return True


def _step(cfg: Config, spec: ActionSpec, side: Side) -> Step:
    def run(ctx: StepContext) -> None:
        if not _applies(ctx, spec):
            ctx.write("action.skipped", f"{spec.name}: the applications did not move "
                      "(abort from split): not run")
            ctx.results.update(action=spec.name, skipped=True)
            return
        result = run_action(ctx, spec, side, cfg)
        ctx.results.update(action=spec.name, exit=result.returncode,
                           attempts=result.attempts, seconds=round(result.seconds, 4))

    # The action's own timeout bounds it (retries included); the step adds a margin.
    return Step(step_name(spec, side), run, timeout=spec.timeout + 30.0,
                description=spec.description or f"{spec.control.value} action {spec.name}",
                side=side)


def advanced(
    cfg: Config, request: Request, side: Side, timings: tuple[Timing, ...]
) -> list[Step]:
    """Advanced actions of ``timings`` (early → default → late, then declaration order)."""
    return [
        _step(cfg, a, side) for a in cfg.actions_of(ControlType.ADVANCED) if a.timing in timings
    ]


def control(cfg: Config, control: ControlType, side: Side, request: Request) -> list[Step]:
    """The actions of one control type (start/stop-application, backup) at this point.

    At Abort, stop-application (before the services stop) and start-application (after
    they start again) run only when aborting from merge.
    """
    return [_step(cfg, a, side) for a in cfg.actions_of(control)]


def run_readiness_actions(
    cfg: Config, side: Side, ctx: StepContext, dry_run: bool = False
) -> list[ActionResult]:
    """Run every readiness-check action on ``side``, one at a time; never raises for a
    failing action: each result says ok or why not (the checks part reports them)."""
    return [
        run_action(ctx, a, side, cfg, dry_run=dry_run, raise_on_failure=False)
        for a in cfg.actions_of(ControlType.READINESS_CHECK)
    ]
