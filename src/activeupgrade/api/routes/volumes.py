"""Managed volumes: list and show. Adopting, releasing, resynchronising and verifying are
maintenance operations of the engine (``routes/operations.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of
from activeupgrade.platform.volumes import registry


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


routes = [
    Route("/volumes", list_volumes, methods=["GET"]),
    Route("/volumes/{name:path}", show, methods=["GET"]),
]
