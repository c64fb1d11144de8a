"""Readiness checks and the session plan over the API."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of, read_json
from activeupgrade.checks.catalogue import CHECKS, FINAL, ON_DEMAND, UPGRADE_SIDE
from activeupgrade.checks.runner import last_report
from activeupgrade.config import loader
from activeupgrade.errors import UsageError
from activeupgrade.session.plan import build_plan


async def last(request: Request) -> JSONResponse:
    """The last readiness check report: ``{ready, checks: [{id, severity, ok, message,
    action}]}`` (``{"ran": false}`` before the first check)."""
    d = daemon_of(request)
    report = await asyncio.to_thread(last_report, d.store)
    return JSONResponse({"ran": True, **report} if report else {"ran": False, "ready": None,
                                                                  "checks": []})


async def catalogue(request: Request) -> JSONResponse:
    """Every readiness check with its id, severity, cause and fix, and when each runs."""
    return JSONResponse({
        "checks": [{"id": c.id, "name": c.name, "severity": c.severity.value,
                    "title": c.title, "cause": c.cause, "fix": c.fix} for c in CHECKS],
        "sets": {"CheckReadiness": list(ON_DEMAND), "PrepareSplit": list(FINAL),
                 "PrepareMerge": list(UPGRADE_SIDE)},
    })


async def plan(request: Request) -> JSONResponse:
    """A dry run of the whole session; body ``{"config": PATH, "run_actions": bool}``.

    Nothing is changed; custom actions run (with ACTIVE_UPGRADE_DRY_RUN=1) only when
    ``run_actions`` is true.
    """
    d = daemon_of(request)
    body = await read_json(request)
    name = body.get("config") or ""
    if not isinstance(name, str):
        raise UsageError("`config` must be a path string")
    run_actions = body.get("run_actions", False)
    if not isinstance(run_actions, bool):
        raise UsageError("`run_actions` must be true or false")

    def build() -> dict[str, Any]:
        path = str(loader.resolve_in_folder(d.instance, name)) if name else \
            d.engine.status().config
        cfg = d.platform.idle_config(path)
        return build_plan(d.instance, d.store, d.log, cfg, run_actions=run_actions)

    return JSONResponse(await asyncio.to_thread(build))


routes = [
    Route("/checks/last", last, methods=["GET"]),
    Route("/checks/catalogue", catalogue, methods=["GET"]),
    Route("/plan", plan, methods=["POST"]),
]
