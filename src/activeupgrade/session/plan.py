"""``au plan``: a dry run of the whole session that changes nothing (SPEC §12).

The plan is read back from the same recipe the engine runs (``session/recipe.py``), so it
cannot disagree with it: the steps of every request in session order (and of both ways to
abort), the readiness checks run read-only, the services that stop and start and where,
every custom action in the order it will run (``planned_actions``), the files to back up,
the expected disruption at merge (from the services' measured switchovers when known) and
the resync size and time for commit and abort (from the volumes part when it can tell).

Custom actions are not run unless asked (``run_actions``); then every action that runs on
the Production Side is run once, with ``ACTIVE_UPGRADE_DRY_RUN=1``, as are the
readiness-check actions inside the checks.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable
from typing import Any

from activeupgrade.activity import ActivityLog
from activeupgrade.checks import catalogue
from activeupgrade.checks.runner import CheckEnv, run_checks
from activeupgrade.config.model import ActionSpec, Config, ControlType, Switchover, Timing
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.instance import Instance
from activeupgrade.model.graph import GRAPH
from activeupgrade.model.states import OperatorAction, Request, Severity, Side, UpgradeState
from activeupgrade.platform.actions.runner import run_action
from activeupgrade.platform.actions.steps import step_name
from activeupgrade.platform.services.backend import backend_kind
from activeupgrade.platform.side import writes
from activeupgrade.platform.volumes import checkpoint, registry
from activeupgrade.session import recipe
from activeupgrade.store.db import Store
from activeupgrade.units import human_bytes

A = OperatorAction
SESSION: tuple[Request, ...] = GRAPH.requests(A.SPLIT, A.MERGE, A.COMMIT, A.FINISH)
"""The requests of a committed session, in order (from the state graph)."""

READINESS_SIDES: dict[Request, tuple[Side, ...]] = {
    Request.CHECK_READINESS: (Side.PRODUCTION,),
    Request.PREPARE_SPLIT: (Side.PRODUCTION,),
    Request.PREPARE_MERGE: (Side.UPGRADE,),
}
"""Where readiness-check actions run when the readiness checks of a request run."""

ABORTS = (UpgradeState.SPLIT, UpgradeState.MERGE)
"""The two ways to abort worth planning: from split (no disruption) and from merge."""

SWITCHOVER_NAMESPACE = "switchover"
"""Where the services part records measured stops and starts (``<session>:<phase>:<name>``)."""


def steps_of(request: Request, cfg: Config) -> list[dict[str, Any]]:
    """The steps of ``request`` as the engine will run them (name, description, side,
    timeout, phase)."""
    return [{"name": st.name, "description": st.description, "side": st.side.value,
             "timeout": st.timeout,
             "phase": st.sub_request.value if st.sub_request else None}
            for st in recipe.request_steps(request, cfg)]


def requests_plan(cfg: Config) -> list[dict[str, Any]]:
    """Every request of the session, then abort from split and from merge, with its steps
    (the same steps: which of them act depends on what the session did)."""
    out = [{"request": r.value, "abort_from": None, "steps": steps_of(r, cfg)}
           for r in SESSION]
    for state in ABORTS:
        out.append({"request": Request.ABORT.value, "abort_from": state.value,
                    "steps": steps_of(Request.ABORT, cfg)})
    return out


def planned_actions(cfg: Config) -> dict[Request, list[tuple[Side, ActionSpec]]]:
    """Every custom action in the order it will run at each request (read from the recipe
    itself; readiness-check actions where the readiness checks run)."""
    by_step: dict[str, tuple[Side, ActionSpec]] = {
        step_name(a, sd): (sd, a) for a in cfg.actions for sd in (Side.PRODUCTION, Side.UPGRADE)
    }
    readiness = cfg.actions_of(ControlType.READINESS_CHECK)
    plan: dict[Request, list[tuple[Side, ActionSpec]]] = {}
    for request in GRAPH.requests():
        steps = recipe.request_steps(request, cfg)
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


def measured_switchover(store: Store, service: str) -> dict[str, float] | None:
    """The last measured stop/start of ``service`` at a merge or abort, or None."""
    best: dict[str, Any] | None = None
    for key, doc in store.docs(SWITCHOVER_NAMESPACE).items():
        if not key.endswith(f":{service}") or not isinstance(doc, dict):
            continue
        if not all(doc.get(k) for k in ("stop_began", "old_exited", "start_began",
                                        "healthy_at")):
            continue
        if best is None or float(doc["stop_began"]) > float(best["stop_began"]):
            best = doc
    if best is None:
        return None
    return {
        "stop_seconds": round(float(best["old_exited"]) - float(best["stop_began"]), 4),
        "start_seconds": round(float(best["healthy_at"]) - float(best["start_began"]), 4),
        # Overlap: the old instance exits after the new one is healthy, no gap at all.
        "gap_seconds": round(max(0.0, float(best["healthy_at"]) - float(best["old_exited"])),
                             4),
        "measured_at": float(best["stop_began"]),
    }


def services_plan(store: Store, cfg: Config) -> list[dict[str, Any]]:
    out = []
    for svc in cfg.services:
        out.append({
            "name": svc.name,
            "backend": backend_kind(svc).value,
            "enabled": svc.enabled,
            "at_split": "stopped and disabled on the Upgrade Side (startup type saved); "
                        "keeps running on Production",
            "at_merge": ("started on the upgraded software beside the running one, which "
                         f"gets {svc.stop_signal} once the new one is healthy (overlap)"
                         if svc.switchover is Switchover.OVERLAP else
                         "serves through the switch, then stopped and started on the upgraded "
                         "software (late-stop)" if svc.switchover is Switchover.LATE_STOP else
                         "stopped on Production, started on the upgraded software")
                        + "; back to the original software by itself if not healthy within "
                        f"{svc.start_timeout:g}s (startup type restored)",
            "handover": svc.handover.value,
            "switchover": svc.switchover.value,
            "hold_limit": svc.hold_limit,
            "at_abort_from_merge": "stopped, started again on the original software",
            "held_sockets": [s.listen for s in svc.sockets],
            "measured": measured_switchover(store, svc.name),
        })
    return out


def disruption(services: list[dict[str, Any]]) -> dict[str, Any]:
    """Expected time without a serving application at merge, from measured switchovers."""
    if not services:
        return {"known": True, "seconds": 0.0, "text": "no services: no disruption"}
    unknown = [s["name"] for s in services if s["measured"] is None]
    held = all(s["held_sockets"] for s in services)
    note = ("listening sockets are held: clients wait instead of failing" if held else
            "services without held sockets refuse connections meanwhile")
    if unknown:
        return {"known": False, "seconds": None, "unknown": unknown,
                "text": f"unknown: never measured for {', '.join(unknown)}; {note}"}
    # The services stop one after the other, then all start: the longest gap is the one
    # a client of that service sees.
    worst = max(float(s["measured"]["gap_seconds"]) for s in services)
    return {"known": True, "seconds": round(worst, 3),
            "text": f"about {worst:.2f}s per service (last measured); {note}"}


def actions_plan(cfg: Config) -> list[dict[str, Any]]:
    out = []
    for request, found in planned_actions(cfg).items():
        out.append({"request": request.value, "actions": [
            {"name": a.name, "side": side.value, "control": a.control.value,
             "timing": a.timing.value, "file": a.file, "args": list(a.args),
             "timeout": a.timeout, "description": a.description}
            for side, a in found]})
    return out


def backup_plan(instance: Instance, cfg: Config) -> dict[str, Any]:
    files = []
    for pattern in cfg.backup.paths:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else (
            [pattern] if os.path.exists(pattern) else [])
        for path in matches:
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            files.append({"path": path, "pattern": pattern, "bytes": size})
        if not matches:
            files.append({"path": pattern, "pattern": pattern, "bytes": None,
                          "note": "nothing matches now"})
    return {"folder": cfg.backup.folder or str(instance.backups), "files": files,
            "bytes": sum(f["bytes"] or 0 for f in files)}


def resync_plan(store: Store, cfg: Config) -> dict[str, Any]:
    """Size and time of the resync at commit and at abort, from the volumes part."""
    found = registry.pending_resync(store, cfg)
    parts = []
    for outcome in ("commit", "abort"):
        est = found.get(outcome)
        if isinstance(est, dict):
            parts.append(f"{outcome}: {human_bytes(float(est.get('bytes', 0)))} in "
                         f"{est.get('files', 0)} file(s), about "
                         f"{float(est.get('seconds_estimate', 0.0)):.1f}s")
    return {"known": True, **found, "text": "; ".join(parts) or "nothing to resync"}


def checkpoint_plan(store: Store, cfg: Config) -> list[dict[str, Any]]:
    """The data checkpoints: each checkpointed volume, with its checkpoint and the writes
    since when one is frozen (in Merge)."""
    out = []
    for spec in cfg.checkpointed:
        vol = registry.by_path(store, spec.path)
        out.append({"path": spec.path,
                    "checkpoint": checkpoint.view(vol) if vol is not None else None})
    return out


def side_plan(instance: Instance) -> dict[str, Any]:
    """What the Upgrade Side, when one exists, wrote outside the managed volumes: none of
    it is kept (listed before merge)."""
    found = writes.written(instance)
    return {"exists": found.exists, "writes": found.to_dict(), "text": found.summary()}


def _plan_context(instance: Instance, store: Store, log: ActivityLog, cfg: Config,
                  node: int) -> StepContext:
    """A step context for running actions in a dry run outside any request."""
    return StepContext(
        instance=instance, store=store, log=log, config=cfg, session="", request=Request.IDLE,
        state=UpgradeState.IDLE, abort_from=None, attempt=1, step="plan", node=node,
        deadline=time.monotonic() + 3600.0,
    )


def run_actions_dry(ctx: StepContext, cfg: Config, actions: list[dict[str, Any]]) -> list[
        dict[str, Any]]:
    """Run every Production-side action once with ACTIVE_UPGRADE_DRY_RUN=1."""
    done: set[str] = set()
    results = []
    by_name = {a.name: a for a in cfg.actions}
    for entry in actions:
        for item in entry["actions"]:
            spec = by_name[item["name"]]
            if item["side"] != Side.PRODUCTION.value or spec.name in done or \
                    spec.control is ControlType.READINESS_CHECK:
                continue
            done.add(spec.name)
            ctx.request = Request(entry["request"])
            result = run_action(ctx, spec, Side.PRODUCTION, cfg, dry_run=True,
                                raise_on_failure=False)
            results.append({**result.to_dict(), "request": entry["request"]})
    skipped = sorted({a.name for a in cfg.actions} - done - {
        a.name for a in cfg.actions_of(ControlType.READINESS_CHECK)})
    if skipped:
        results.append({"skipped": skipped, "reason": "they run only on the Upgrade Side, "
                        "which does not exist before split"})
    return results


def build_plan(instance: Instance, store: Store, log: ActivityLog, cfg: Config, *,
               run_actions: bool = False) -> dict[str, Any]:
    """The whole-session plan of ``cfg``; nothing is changed unless ``run_actions``."""
    ctx = None
    if run_actions:
        node = log.write("plan.run-actions", "plan: running custom actions in a dry run "
                         "(ACTIVE_UPGRADE_DRY_RUN=1)", severity=Severity.NOTICE)
        ctx = _plan_context(instance, store, log, cfg, node)
    env = CheckEnv(instance=instance, store=store, config=cfg, step=ctx,
                   run_actions=run_actions, dry_run=True)
    report = run_checks(env, catalogue.ON_DEMAND)
    services = services_plan(store, cfg)
    actions = actions_plan(cfg)
    plan: dict[str, Any] = {
        "config": {"source": cfg.source, "files": list(cfg.files),
                   "description": cfg.description, "notices": list(cfg.notices)},
        "ready": report.ready,
        "checks": [c.to_dict() for c in report.checks],
        "volumes": [{"path": v.path, "role": v.role.value, "checkpoint": v.checkpoint}
                    for v in cfg.volumes],
        "checkpoints": checkpoint_plan(store, cfg),
        "confirm_within": cfg.merge.confirm_within,
        "requests": requests_plan(cfg),
        "services": services,
        "actions": actions,
        "actions_run": run_actions,
        "backup": backup_plan(instance, cfg),
        "disruption": disruption(services),
        "resync": resync_plan(store, cfg),
        "upgrade_side": side_plan(instance),
    }
    if ctx is not None:
        plan["action_results"] = run_actions_dry(ctx, cfg, actions)
    return plan
