"""Application services: list, status, start, stop, release (``au service …``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of
from activeupgrade.config.model import Config
from activeupgrade.errors import ServiceError, StateError
from activeupgrade.model.states import OperationalState, UpgradeState
from activeupgrade.platform.services import registry
from activeupgrade.platform.services.backend import backend_for
from activeupgrade.platform.services.supervisor import Supervisor

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


async def release_service(request: Request) -> JSONResponse:
    """Stop one service, then end its keeper: the listening sockets close, the record goes.

    Refused during a session: the keeper's sockets are what carries clients through the
    merge, and the session's steps expect to find it.
    """
    return await _control(request, "release")


async def _control(request: Request, verb: str) -> JSONResponse:
    d = daemon_of(request)
    name = request.path_params["name"]
    status = d.engine.status()
    if status.operational_state is OperationalState.BUSY:
        raise StateError(
            f"a request is running: {verb} {name} later",
            hint="Wait until `au status` shows Ready or Broken.",
        )
    if verb == "release" and status.upgrade_state is not UpgradeState.IDLE:
        raise StateError(
            f"cannot release the keeper of {name} during a session "
            f"(upgrade state {status.upgrade_state.value})",
            hint="Its sockets carry clients through the merge: finish the session first "
                 "(`au finish` or `au abort`), or use `au service stop` without --release.",
        )

    def run() -> dict[str, Any]:
        spec = registry.find(_config(d), name)
        backend = backend_for(spec, d.instance, d.store)
        if verb == "start":
            started = backend.start(spec)
            done = {"started": not started.already, "seconds": round(started.seconds, 3),
                    "detail": started.detail}
        else:
            if verb == "release" and not isinstance(backend, Supervisor):
                raise ServiceError(
                    f"service {name} is run by {backend.kind}: it has no keeper to release",
                    hint=f"Use `au service stop {name}` without --release.",
                )
            stopped = backend.stop(spec)
            done = {"stopped": not stopped.already, "seconds": round(stopped.seconds, 3),
                    "killed": stopped.killed}
            if isinstance(backend, Supervisor) and verb == "release":
                backend.shutdown(spec)
                done["released"] = True
        d.log.write(f"service.{verb}", f"operator {verb}: {name}", details=done)
        return {**registry.status(spec, d.instance, d.store, probe=False), **done}

    return JSONResponse(await asyncio.to_thread(run))


routes = [
    Route("/services", list_services, methods=["GET"]),
    Route("/services/{name}", service_status, methods=["GET"]),
    Route("/services/{name}/start", start_service, methods=["POST"]),
    Route("/services/{name}/stop", stop_service, methods=["POST"]),
    Route("/services/{name}/release", release_service, methods=["POST"]),
]
