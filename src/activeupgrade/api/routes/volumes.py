"""Managed volumes: list, show, adopt, verify, release, resync."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of, read_json
from activeupgrade.config.model import VolumeRole
from activeupgrade.errors import StateError, UsageError
from activeupgrade.model.states import UpgradeState
from activeupgrade.platform.volumes import adoption, registry, replica


def _idle_only(request: Request, what: str) -> None:
    state = daemon_of(request).engine.status().upgrade_state
    if state is not UpgradeState.IDLE:
        raise StateError(f"cannot {what} while the upgrade state is {state}",
                         hint="Finish or abort the session first.")


async def list_volumes(request: Request) -> JSONResponse:
    """Every managed volume with its live replica and duplex flag."""
    store = daemon_of(request).store
    vols = await asyncio.to_thread(lambda: [v.view() for v in registry.all_volumes(store)])
    return JSONResponse(vols)


async def show(request: Request) -> JSONResponse:
    """One volume (by name or path), with the pending resync."""
    store = daemon_of(request).store

    def work() -> dict[str, Any]:
        vol = registry.require(store, request.path_params["name"])
        view = vol.view()
        view["pending_resync"] = registry.pending_resync(store)
        return view

    return JSONResponse(await asyncio.to_thread(work))


async def adopt(request: Request) -> JSONResponse:
    """Body ``{"path": ABS, "role": "system"|"data"}``; resumes an interrupted adoption."""
    _idle_only(request, "adopt a volume")
    d = daemon_of(request)
    body = await read_json(request)
    path, role = body.get("path"), body.get("role", "system")
    if not isinstance(path, str) or not path:
        raise UsageError("`path` (an absolute directory path) is required")
    try:
        vrole = VolumeRole(role)
    except ValueError:
        raise UsageError(f"`role` must be system or data, not {role!r}") from None
    vol = await asyncio.to_thread(adoption.adopt, d.instance, d.store, path, vrole,
                                  mode=str(body.get("mode", "")))
    return JSONResponse(vol.view())


async def verify(request: Request) -> JSONResponse:
    """Compare the replicas of one volume ("all" for every one); 422 VerifyMismatch."""
    store = daemon_of(request).store
    name = request.path_params["name"]

    def work() -> list[dict[str, Any]]:
        vols = registry.all_volumes(store) if name == "all" else [registry.require(store, name)]
        return [{"name": v.name, "entries": replica.verify_volume(v), "identical": True}
                for v in vols]

    return JSONResponse(await asyncio.to_thread(work))


async def release(request: Request) -> JSONResponse:
    """Give back a plain directory with the live content; forget the volume."""
    _idle_only(request, "release a volume")
    store = daemon_of(request).store
    vol = registry.require(store, request.path_params["name"])
    await asyncio.to_thread(adoption.release, store, vol)
    return JSONResponse({"released": vol.path})


async def resync(request: Request) -> JSONResponse:
    """Idle only: bring the standby replica up to date with the live one."""
    _idle_only(request, "resync outside a session step")
    store = daemon_of(request).store
    vol = registry.require(store, request.path_params["name"])

    def work() -> dict[str, Any]:
        live = vol.live_or_fail()
        res = replica.sync(store, vol, live, vol.other(live))
        fresh = registry.require(store, vol.name)
        fresh.duplex = True
        registry.save(store, fresh)
        return {"name": vol.name, "from": live, "to": vol.other(live), **res.to_dict()}

    return JSONResponse(await asyncio.to_thread(work))


routes = [
    Route("/volumes", list_volumes, methods=["GET"]),
    Route("/volumes/adopt", adopt, methods=["POST"]),
    Route("/volumes/{name:path}/verify", verify, methods=["POST"]),
    Route("/volumes/{name:path}/release", release, methods=["POST"]),
    Route("/volumes/{name:path}/resync", resync, methods=["POST"]),
    Route("/volumes/{name:path}", show, methods=["GET"]),
]
