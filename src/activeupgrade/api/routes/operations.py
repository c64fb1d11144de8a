"""Maintenance operations: adopt, release, resync, verify, service start/stop/release,
restart of the Upgrade Side, exec. Each takes the engine's Busy slot (the state graph says
where each is allowed), is journaled and logged like a request; the answer comes at once
with the operation's record, and its end is seen in ``/events`` (status and ``output``
events) and in ``GET /operations/ID``."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of, int_param, read_json
from activeupgrade.engine import maintenance
from activeupgrade.errors import UsageError
from activeupgrade.model.states import Operation


async def start(request: Request) -> JSONResponse:
    """Start a maintenance operation: body ``{"args": {...}}``.

    Arguments: adopt ``{path, role, mode?}``; release, resync ``{name}``; verify
    ``{names: [...]}`` (empty: every volume); service-start, service-stop, service-release
    ``{name}``; restart-upgrade-side ``{}``; exec ``{argv: [...], timeout?, user?}``. Answers 202
    with the operation's record (``id``, ``state`` running).
    """
    d = daemon_of(request)
    name = request.path_params["operation"]
    try:
        operation = Operation(name)
    except ValueError:
        raise UsageError(f"unknown operation {name!r}",
                         hint="One of: " + ", ".join(o.value for o in Operation)) from None
    body = await read_json(request)
    args = body.get("args", {})
    if not isinstance(args, dict):
        raise UsageError("`args` must be a JSON object")
    rec = await asyncio.to_thread(d.engine.submit_operation, operation, args)
    return JSONResponse(rec, status_code=202)


async def show(request: Request) -> JSONResponse:
    """One operation's record: state (running, done, failed, interrupted), result, error."""
    d = daemon_of(request)
    op_id = request.path_params["id"]
    rec = maintenance.record(d.engine, op_id)
    if rec is None:
        raise UsageError(f"no operation {op_id!r}", hint="`GET /operations` lists them.")
    return JSONResponse(rec)


async def listing(request: Request) -> JSONResponse:
    """The newest operations first (``?limit=N``, default 50)."""
    d = daemon_of(request)
    limit = int_param(request, "limit", 50, low=1, high=1000)
    recs: list[dict[str, Any]] = maintenance.recent(d.engine, limit)
    return JSONResponse(recs)


routes = [
    Route("/operations", listing, methods=["GET"]),
    Route("/operations/{operation}", start, methods=["POST"]),
    Route("/operations/{id}", show, methods=["GET"]),
]
