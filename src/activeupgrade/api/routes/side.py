"""The Upgrade Side. Running a command in it (``exec``) and restarting it are maintenance
operations of the engine (``routes/operations.py``). Here: the two ends of an ``au shell``
(it runs on the operator's terminal, so it is logged as it opens and ends) and what the
side wrote outside the managed volumes. Each route calls one entry point of
``platform/side/operations``."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import (
    DaemonHandle,
    daemon_of,
    int_field,
    number_field,
    read_json,
)
from activeupgrade.errors import UsageError
from activeupgrade.platform.side import operations


def _where(d: DaemonHandle) -> operations.Where:
    s = d.engine.status()
    return operations.Where(s.session, s.upgrade_state.value)


def _text(body: dict[str, object], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise UsageError(f"`{key}` must be a string")
    return value


async def shell(request: Request) -> JSONResponse:
    """Open (``{"phase": "open", "user", "terminal", "operator"}``: answers the command to
    run on the operator's terminal) or close (``{"phase": "close", "entry", "returncode",
    "seconds"}``) an ``au shell``; both are logged."""
    d = daemon_of(request)
    body = await read_json(request)
    phase = body.get("phase")
    if phase == "open":
        return JSONResponse(await asyncio.to_thread(
            operations.open_shell, d.instance, d.log, _where(d), user=_text(body, "user"),
            terminal=_text(body, "terminal"), operator=_text(body, "operator")))
    if phase == "close":
        entry = int_field(body, "entry", low=1)
        code = int_field(body, "returncode", low=-(2**31), high=2**31 - 1)
        seconds = number_field(body, "seconds", low=0.0, high=1e9, default=0.0)
        await asyncio.to_thread(operations.close_shell, d.log, _where(d), entry, code, seconds)
        return JSONResponse({"closed": entry})
    raise UsageError("`phase` must be \"open\" or \"close\"")


async def writes(request: Request) -> JSONResponse:
    """What the Upgrade Side wrote outside the managed volumes: listed, never kept."""
    d = daemon_of(request)
    found = await asyncio.to_thread(operations.writes, d.instance)
    return JSONResponse({**found.to_dict(), "summary": found.summary()})


routes = [
    Route("/side/shell", shell, methods=["POST"]),
    Route("/side/writes", writes, methods=["GET"]),
]
