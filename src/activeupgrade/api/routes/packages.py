"""Packages staged on the Production Side for the Upgrade Side (``platform/packages.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import DaemonHandle, daemon_of, read_json
from activeupgrade.errors import AUError, UsageError
from activeupgrade.model.states import Severity
from activeupgrade.platform.side import namespace, packages


def _stage(d: DaemonHandle, names: list[str], update: bool) -> dict[str, Any]:
    node = d.log.write("packages.stage", "staging packages for the Upgrade Side: "
                       + (" ".join(names) if names else "what apt-get upgrade would install"),
                       severity=Severity.NOTICE, details={"names": names, "update": update})
    try:
        found, output = packages.stage(d.instance, names, update=update)
    except AUError as exc:
        d.log.write("packages.stage.failed", exc.message, parent=node, severity=Severity.ERROR,
                    details=exc.details)
        raise
    restart = namespace.read(d.instance).get("state") == namespace.SideState.UP
    d.log.write("packages.staged", f"{len(found.packages)} package(s) staged for the "
                "Upgrade Side" + (" (it sees them after `au restart-upgrade-side`)"
                                  if restart else ""), parent=node,
                details={**found.to_dict(), "apt_tail": output[-4000:]})
    return {**found.to_dict(), "restart_needed": restart}


async def stage(request: Request) -> JSONResponse:
    """Download what ``apt-get upgrade`` (or ``install NAMES``) would install, for the
    Upgrade Side. Body ``{"names": [...], "update": bool}``."""
    d = daemon_of(request)
    body = await read_json(request)
    names = body.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError("`names` must be a list of package names")
    return JSONResponse(await asyncio.to_thread(_stage, d, names, bool(body.get("update"))))


async def show(request: Request) -> JSONResponse:
    """What is staged for the Upgrade Side."""
    d = daemon_of(request)
    found = await asyncio.to_thread(packages.current, d.instance)
    return JSONResponse({**found.to_dict(), "staged": found.staged,
                         "folder": str(packages.stage_folder(d.instance))})


async def clear(request: Request) -> JSONResponse:
    """Forget what is staged."""
    d = daemon_of(request)
    await asyncio.to_thread(packages.clear, d.instance)
    d.log.write("packages.cleared", "staged packages removed", severity=Severity.NOTICE)
    return JSONResponse({"staged": False})


routes = [
    Route("/packages", show, methods=["GET"]),
    Route("/packages/stage", stage, methods=["POST"]),
    Route("/packages/clear", clear, methods=["POST"]),
]
