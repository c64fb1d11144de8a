"""The Upgrade Side: run a command inside it, restart it."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of, read_json
from activeupgrade.errors import StateError, UsageError
from activeupgrade.model.states import UpgradeState
from activeupgrade.platform.side import namespace, partner


async def exec_(request: Request) -> JSONResponse:
    """Body ``{"argv": [...], "timeout": s}``; returns exit value and output."""
    d = daemon_of(request)
    body = await read_json(request)
    argv = body.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise UsageError("`argv` must be a non-empty list of strings")
    timeout = float(body.get("timeout", 3600))
    done = await asyncio.to_thread(namespace.run, d.instance, argv, timeout)
    return JSONResponse({"returncode": done.returncode, "stdout": done.stdout,
                         "stderr": done.stderr, "seconds": round(done.duration, 3)})


async def restart(request: Request) -> JSONResponse:
    """Stop everything in the Upgrade Side, rebuild it and boot it again."""
    d = daemon_of(request)
    s = d.engine.status()
    if s.upgrade_state not in (UpgradeState.SPLIT, UpgradeState.PREPARE_MERGE):
        raise StateError(f"the Upgrade Side exists in Split, not in {s.upgrade_state}")

    def work() -> dict[str, Any]:
        cfg = d.engine.platform.session_config(s.session, s.config, stage=False)
        namespace.stop(d.instance, final_state="rebooting")
        rec = namespace.start(d.instance, d.store, cfg, s.session)
        state, detail = partner.partner_state(d.instance)
        return {"partner_state": state.value, "detail": detail, "pid": rec.get("pid")}

    return JSONResponse(await asyncio.to_thread(work))


routes = [
    Route("/side/exec", exec_, methods=["POST"]),
    Route("/side/restart", restart, methods=["POST"]),
]
