"""Managed volumes: list and show. Adopting, releasing, resynchronising and verifying are
maintenance operations of the engine (``routes/operations.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of
from activeupgrade.errors import AUError
from activeupgrade.platform.volumes import checkpoint, registry


async def list_volumes(request: Request) -> JSONResponse:
    """Every managed volume with its live replica and duplex flag."""
    store = daemon_of(request).store
    vols = await asyncio.to_thread(lambda: [v.view() for v in registry.all_volumes(store)])
    return JSONResponse(vols)


async def show(request: Request) -> JSONResponse:
    """One volume (by name or path), with its own pending resync (the figures the status
    bar shows, computed in the background: ``pending_as_of`` says when)."""
    daemon = daemon_of(request)
    store = daemon.store

    def work() -> dict[str, Any]:
        vol = registry.require(store, request.path_params["name"])
        view = vol.view()
        facts = daemon.platform.facts()
        mine = (facts.get("pending_by_volume") or {}).get(vol.name) or {}
        view["pending_resync"] = {o: mine.get(o, dict(registry.ZERO))
                                  for o in registry.OUTCOMES}
        view["pending_as_of"] = (facts.get("pending_resync") or {}).get("as_of", 0)
        view["checkpoint"] = checkpoint.view(vol, checkpoint.LISTED)
        view["checkpoint_at_merge"] = _checkpointed(daemon, vol.path)
        return view

    return JSONResponse(await asyncio.to_thread(work))


def _checkpointed(daemon: Any, path: str) -> bool | None:
    """Whether the session's (or the loaded) configuration sets ``checkpoint = true`` on
    the volume at ``path`` (None: the configuration cannot be read now)."""
    s = daemon.engine.status()
    try:
        cfg = (daemon.platform.session_config(s.session, s.config, stage=False) if s.session
               else daemon.platform.idle_config(s.config))
    except AUError:
        return None
    return any(v.path == path and v.checkpoint for v in cfg.volumes)


routes = [
    Route("/volumes", list_volumes, methods=["GET"]),
    Route("/volumes/{name:path}", show, methods=["GET"]),
]
