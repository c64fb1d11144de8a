"""Application services: list and status (``au service list|status``). Starting, stopping
and releasing a service are maintenance operations of the engine
(``routes/operations.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import DaemonHandle, daemon_of
from activeupgrade.config.model import Config
from activeupgrade.platform.services import registry


def _config(d: DaemonHandle) -> Config:
    """The session's staged configuration during a session, else the loaded one."""
    s = d.engine.status()
    if s.session:
        return d.platform.session_config(s.session, s.config, stage=False)
    return d.platform.idle_config(s.config)


async def list_services(request: Request) -> JSONResponse:
    """Every configured service with its state (``?probe=1`` also runs health checks)."""
    d = daemon_of(request)
    probe = request.query_params.get("probe", "") in ("1", "true", "yes")

    def build() -> list[dict[str, Any]]:
        return registry.describe(_config(d), d.instance, d.store, probe=probe)

    return JSONResponse(await asyncio.to_thread(build))


async def service_status(request: Request) -> JSONResponse:
    """One service's state, its keeper, held sockets and health (always probed)."""
    d = daemon_of(request)
    name = request.path_params["name"]

    def build() -> dict[str, Any]:
        spec = registry.find(_config(d), name)
        return registry.status(spec, d.instance, d.store, probe=True)

    return JSONResponse(await asyncio.to_thread(build))


routes = [
    Route("/services", list_services, methods=["GET"]),
    Route("/services/{name}", service_status, methods=["GET"]),
]
