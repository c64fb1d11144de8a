"""Application services: list, status, start, stop (``au service …``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of
from activeupgrade.config.model import Config
from activeupgrade.errors import StateError
from activeupgrade.model.states import OperationalState
from activeupgrade.platform.services import registry
from activeupgrade.platform.services.backend import backend_for

if TYPE_CHECKING:
    from activeupgrade.daemon import Daemon


def _config(d: Daemon) -> Config:
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


async def start_service(request: Request) -> JSONResponse:
    """Start one service and wait until it is healthy."""
    return await _control(request, "start")


async def stop_service(request: Request) -> JSONResponse:
    """Stop one service (its listening sockets stay held by its keeper)."""
    return await _control(request, "stop")


async def _control(request: Request, verb: str) -> JSONResponse:
    d = daemon_of(request)
    name = request.path_params["name"]
    if d.engine.status().operational_state is OperationalState.BUSY:
        raise StateError(
            f"a request is running: {verb} {name} later",
            hint="Wait until `au status` shows Ready or Broken.",
        )

    def run() -> dict[str, Any]:
        spec = registry.find(_config(d), name)
        backend = backend_for(spec, d.instance, d.store)
        if verb == "start":
            started = backend.start(spec)
            done = {"started": not started.already, "seconds": round(started.seconds, 3),
                    "detail": started.detail}
        else:
            stopped = backend.stop(spec)
            done = {"stopped": not stopped.already, "seconds": round(stopped.seconds, 3),
                    "killed": stopped.killed}
        d.log.write(f"service.{verb}", f"operator {verb}: {name}", details=done)
        return {**registry.status(spec, d.instance, d.store, probe=False), **done}

    return JSONResponse(await asyncio.to_thread(run))


routes = [
    Route("/services", list_services, methods=["GET"]),
    Route("/services/{name}", service_status, methods=["GET"]),
    Route("/services/{name}/start", start_service, methods=["POST"]),
    Route("/services/{name}/stop", stop_service, methods=["POST"]),
]
