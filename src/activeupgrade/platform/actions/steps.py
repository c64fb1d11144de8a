"""Custom action steps of the requests (SPEC §6), and the plan of every action.

``platform/recipe.py`` places these steps; ``planned_actions`` reads the same recipe back,
so ``au plan`` lists exactly what the steps will run, in their order. Readiness-check
actions run inside the readiness checks (``run_readiness_actions``).
"""

from __future__ import annotations

from collections.abc import Callable

from activeupgrade.config.model import ActionSpec, Config, ControlType, Timing
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.model.states import Request, Side
from activeupgrade.platform.actions.runner import ActionResult, run_action

PLAN_ORDER = (
    Request.CHECK_READINESS, Request.PREPARE_SPLIT, Request.EXECUTE_SPLIT,
    Request.PREPARE_MERGE, Request.EXECUTE_MERGE, Request.COMMIT, Request.ABORT,
    Request.FINISH,
)
"""Requests in session order, as ``au plan`` lists them."""

READINESS_SIDES: dict[Request, tuple[Side, ...]] = {
    Request.CHECK_READINESS: (Side.PRODUCTION,),
    Request.PREPARE_SPLIT: (Side.PRODUCTION,),
    Request.PREPARE_MERGE: (Side.UPGRADE,),
}
"""Where readiness-check actions run when the readiness checks of a request run."""


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
        from activeupgrade.platform.services.steps import switched

        if switched(ctx):
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


def planned_actions(cfg: Config) -> dict[Request, list[tuple[Side, ActionSpec]]]:
    """Every action in the order it will run at each request (from the recipe itself)."""
    from activeupgrade.platform import recipe  # the recipe imports this module

    by_step: dict[str, tuple[Side, ActionSpec]] = {
        step_name(a, sd): (sd, a) for a in cfg.actions for sd in (Side.PRODUCTION, Side.UPGRADE)
    }
    readiness = cfg.actions_of(ControlType.READINESS_CHECK)
    plan: dict[Request, list[tuple[Side, ActionSpec]]] = {}
    for request in PLAN_ORDER:
        steps = recipe.request_steps(request, cfg, None)
        found: list[tuple[Side, ActionSpec]] = []
        checks_at = _first(steps, lambda st: st.name.startswith("checks."))
        for index, st in enumerate(steps):
            if index == checks_at:
                found += _readiness(request, readiness)
            if st.name in by_step:
                found.append(by_step[st.name])
        if checks_at is None:
            # No readiness step in this build: they would run with the request's own work.
            early = sum(1 for sd, a in found if a.timing is Timing.EARLY)
            found[early:early] = _readiness(request, readiness)
        plan[request] = found
    return plan


def _readiness(request: Request, actions: list[ActionSpec]) -> list[tuple[Side, ActionSpec]]:
    return [(sd, a) for sd in READINESS_SIDES.get(request, ()) for a in actions]


def _first(steps: list[Step], pred: Callable[[Step], bool]) -> int | None:
    return next((i for i, st in enumerate(steps) if pred(st)), None)
