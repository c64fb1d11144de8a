"""``au plan``: a dry run of the whole session that changes nothing (SPEC §12).

The plan is read back from the same recipe the engine runs (``platform/recipe.py``), so it
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
from typing import Any

from activeupgrade.activity import ActivityLog
from activeupgrade.checks import catalogue
from activeupgrade.checks.probes.volumes import human
from activeupgrade.checks.runner import CheckEnv, run_checks
from activeupgrade.config.model import Config, ControlType
from activeupgrade.engine.steps import StepContext
from activeupgrade.instance import Instance
from activeupgrade.model.states import Request, Severity, Side, UpgradeState
from activeupgrade.platform import recipe
from activeupgrade.platform.actions.steps import planned_actions
from activeupgrade.platform.services.backend import backend_kind
from activeupgrade.platform.volumes import registry
from activeupgrade.store.db import Store

SESSION: tuple[tuple[Request, UpgradeState | None], ...] = (
    (Request.PREPARE_SPLIT, None),
    (Request.EXECUTE_SPLIT, None),
    (Request.PREPARE_MERGE, None),
    (Request.EXECUTE_MERGE, None),
    (Request.COMMIT, None),
    (Request.FINISH, None),
)
"""The requests of a committed session, in order."""

ABORTS = (UpgradeState.SPLIT, UpgradeState.MERGE)
"""The two ways to abort worth planning: from split (no disruption) and from merge."""

SWITCHOVER_NAMESPACE = "switchover"
"""Where the services part records measured stops and starts (``<session>:<phase>:<name>``)."""


def _steps(request: Request, cfg: Config, abort_from: UpgradeState | None) -> list[dict[str, Any]]:
    return [{"name": st.name, "description": st.description, "side": st.side.value,
             "timeout": st.timeout}
            for st in recipe.request_steps(request, cfg, abort_from)]


def requests_plan(cfg: Config) -> list[dict[str, Any]]:
    """Every request of the session, then abort from split and from merge, with its steps."""
    out = [{"request": r.value, "abort_from": None, "steps": _steps(r, cfg, None)}
           for r, _ in SESSION]
    for state in ABORTS:
        out.append({"request": Request.ABORT.value, "abort_from": state.value,
                    "steps": _steps(Request.ABORT, cfg, state)})
    return out


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
        "gap_seconds": round(float(best["healthy_at"]) - float(best["old_exited"]), 4),
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
            "at_merge": "stopped on Production, started on the upgraded software "
                        "(startup type restored)",
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
    pending = getattr(registry, "pending_resync", None)
    if pending is None:
        return {"known": False, "text": "unknown: the volumes part gives no resync estimate"}
    found = pending(store, cfg)
    if not isinstance(found, dict):
        return {"known": False, "text": f"unknown: unexpected estimate {found!r}"}
    parts = []
    for outcome in ("commit", "abort"):
        est = found.get(outcome)
        if isinstance(est, dict):
            parts.append(f"{outcome}: {human(float(est.get('bytes', 0)))} in "
                         f"{est.get('files', 0)} file(s), about "
                         f"{float(est.get('seconds_estimate', 0.0)):.1f}s")
    return {"known": True, **found, "text": "; ".join(parts) or "nothing to resync"}


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
    from activeupgrade.platform.actions.runner import run_action

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
        "volumes": [{"path": v.path, "role": v.role.value} for v in cfg.volumes],
        "requests": requests_plan(cfg),
        "services": services,
        "actions": actions,
        "actions_run": run_actions,
        "backup": backup_plan(instance, cfg),
        "disruption": disruption(services),
        "resync": resync_plan(store, cfg),
    }
    if ctx is not None:
        plan["action_results"] = run_actions_dry(ctx, cfg, actions)
    return plan
