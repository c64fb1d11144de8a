"""Status, operator actions, the state graph and the activity log."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activeupgrade.api.metrics import metrics_text
from activeupgrade.api.server import MAX_ID, daemon_of, int_param, read_json
from activeupgrade.config import loader
from activeupgrade.engine.view import status_schema
from activeupgrade.errors import UsageError
from activeupgrade.model.graph import GRAPH
from activeupgrade.model.states import OperatorAction, Severity
from activeupgrade.session.plan import steps_of
from activeupgrade.units import iso_time


async def status(request: Request) -> JSONResponse:
    """The status bar: upgrade, operational and partner state, allowed actions, duplex."""
    d = daemon_of(request)
    return JSONResponse(await asyncio.to_thread(d.engine.status_view))


async def schema(request: Request) -> JSONResponse:
    """The JSON Schema of the status document (``GET /status``, the status events)."""
    return JSONResponse(status_schema())


async def action(request: Request) -> JSONResponse:
    """Run an operator action (check, split, merge, commit, abort, finish, retry).

    Body: ``{"config": PATH, "force": bool, "keep_data": bool}`` (all optional;
    ``keep_data``: an abort from Merge keeps the live data of checkpointed data volumes).
    Returns at once with the status; follow progress with GET /status or /events.
    """
    d = daemon_of(request)
    name = request.path_params["action"]
    try:
        op = OperatorAction(name)
    except ValueError:
        raise UsageError(
            f"unknown action {name!r}",
            hint="One of: " + ", ".join(a.value for a in OperatorAction),
        ) from None
    body = await read_json(request)
    config = body.get("config")
    if config is not None and not isinstance(config, str):
        raise UsageError("`config` must be a path string")
    if config:
        config = str(loader.resolve_in_folder(d.instance, config))
    keep_data = body.get("keep_data", False)
    if not isinstance(keep_data, bool):
        raise UsageError("`keep_data` must be true or false")
    d.engine.submit(op, config=config, force=bool(body.get("force", False)),
                    keep_data=keep_data)
    return JSONResponse(await asyncio.to_thread(d.engine.status_view))


async def cancel(request: Request) -> JSONResponse:
    """Cancel the running maintenance operation or readiness check: it stops at its next
    check point and fails as Interrupted (a session's requests are aborted instead)."""
    d = daemon_of(request)
    body = await read_json(request)
    reason = body.get("reason", "the operator cancelled it")
    if not isinstance(reason, str):
        raise UsageError("`reason` must be a string")
    d.engine.cancel_work(reason or "the operator cancelled it")
    return JSONResponse(await asyncio.to_thread(d.engine.status_view))


async def graph(request: Request) -> JSONResponse:
    """The state graph as data: every operator action, its sources, requests and cost."""
    return JSONResponse({
        "initial": GRAPH.initial.value,
        "transitions": [
            {
                "action": t.action.value,
                "from": sorted(s.value for s in t.sources),
                "when": sorted(o.value for o in t.when),
                "requests": [{"request": st.request.value, "state": st.state.value}
                             for st in t.stages],
                "to": t.target.value,
                "cost": {s.value: c for s, c in t.cost.items()},
            }
            for t in GRAPH.transitions
        ],
    })


async def steps(request: Request) -> JSONResponse:
    """The steps of every request for the loaded (or given ``?config=``) configuration."""
    d = daemon_of(request)
    config_path = request.query_params.get("config", d.engine.status().config)
    if config_path and "config" in request.query_params:
        config_path = str(loader.resolve_in_folder(d.instance, config_path))

    def build() -> dict[str, Any]:
        cfg = d.platform.idle_config(config_path)
        return {req.value: steps_of(req, cfg) for req in GRAPH.requests()}

    return JSONResponse(await asyncio.to_thread(build))


async def log(request: Request) -> JSONResponse:
    """Activity log entries, oldest first.

    Query: after (id), session, severity (minimum), request, side, event (prefix), limit,
    root (an entry id: only its subtree), newest=1 (the last ``limit`` entries), since
    (seconds since the epoch: entries written from then on).
    """
    d = daemon_of(request)
    q = request.query_params
    sev = q.get("severity")
    try:
        min_sev = Severity(sev) if sev else None
    except ValueError:
        raise UsageError(
            f"unknown severity {sev!r}", hint="One of: " + ", ".join(s.value for s in Severity)
        ) from None
    root_raw = q.get("root")
    entries = d.log.entries(
        after=int_param(request, "after", 0), session=q.get("session") or None,
        min_severity=min_sev, request=q.get("request") or None, side=q.get("side") or None,
        event_prefix=q.get("event") or None,
        limit=int_param(request, "limit", 10_000, low=1, high=1_000_000),
        root=int_param(request, "root", 0, low=1) if root_raw else None,
        newest=q.get("newest", "") in ("1", "true", "yes"),
        since=_since(q.get("since")),
    )
    return JSONResponse([e.to_dict() for e in entries])


def _since(raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"`since` must be seconds since the epoch, not {raw!r}") from None
    if not 0 <= value < 1e11:
        raise UsageError(f"`since` out of range: {raw}")
    return value


async def log_entry(request: Request) -> JSONResponse:
    """One activity log entry with its direct children (e.g. an action's output)."""
    d = daemon_of(request)
    entry_id = int(request.path_params["id"])
    if not 0 < entry_id <= MAX_ID:
        raise UsageError(f"no activity log entry {entry_id}")
    entry = d.log.get(entry_id)
    if entry is None:
        raise UsageError(f"no activity log entry {entry_id}")
    return JSONResponse({
        "entry": entry.to_dict(),
        "children": [c.to_dict() for c in d.log.children(entry_id)],
    })


async def config_loaded(request: Request) -> JSONResponse:
    """Set the configuration file of the next session: body ``{"path": PATH}``."""
    d = daemon_of(request)
    body = await read_json(request)
    path = body.get("path", "")
    if not isinstance(path, str):
        raise UsageError("`path` must be a string")
    if path:  # read now, as /config/load does: an unreadable or unsafe file is refused here
        path = str(loader.resolve_in_folder(d.instance, path))
        await asyncio.to_thread(loader.load_file, Path(path))
    d.engine.set_config(path)
    return JSONResponse(await asyncio.to_thread(d.engine.status_view))


async def history(request: Request) -> JSONResponse:
    """Past and running sessions, newest first: id, started and ended (seconds since the
    epoch and ISO 8601 with offset), outcome (committed, aborted, running, or unfinished
    for a session that ended without either), duration in seconds, configuration, and
    how many requests broke in it. Query: limit."""
    d = daemon_of(request)
    limit = int_param(request, "limit", 50, low=1, high=100_000)

    def rows() -> list[dict[str, Any]]:
        found = d.store.query(
            "SELECT s.id, s.started, s.ended, s.outcome, s.config,"
            " (SELECT COUNT(*) FROM log WHERE log.session = s.id"
            "  AND log.event = 'request.broken') AS broken"
            " FROM sessions s ORDER BY s.started DESC LIMIT ?", (limit,))
        out = []
        for r in found:
            ended = r["ended"]
            outcome = str(r["outcome"] or "") or ("running" if ended is None else "unfinished")
            out.append({
                "session": r["id"], "started": r["started"],
                "started_time": iso_time(float(r["started"])), "ended": ended,
                "ended_time": iso_time(float(ended)) if ended is not None else None,
                "outcome": outcome, "config": r["config"], "broken": int(r["broken"]),
                "seconds": round((float(ended) if ended is not None else time.time())
                                 - float(r["started"]), 3),
            })
        return out

    return JSONResponse(await asyncio.to_thread(rows))


async def metrics(request: Request) -> Response:
    """Prometheus metrics (text format): states, sessions and their durations, resync
    bytes, failed readiness checks and requests."""
    d = daemon_of(request)
    status = await asyncio.to_thread(d.engine.status_view)
    text = await asyncio.to_thread(metrics_text, status, d.store)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def ping(request: Request) -> JSONResponse:
    """Liveness of the daemon: answers at once, whatever the engine is doing."""
    return JSONResponse({"ok": True, "pid": os.getpid()})


async def shutdown(request: Request) -> JSONResponse:
    """Stop the daemon (applications and the Upgrade Side keep running)."""
    d = daemon_of(request)
    for server in d.servers:
        server.should_exit = True
    return JSONResponse({"stopping": True})


routes = [
    Route("/ping", ping, methods=["GET"]),
    Route("/status", status, methods=["GET"]),
    Route("/status/schema", schema, methods=["GET"]),
    Route("/actions/{action}", action, methods=["POST"]),
    Route("/cancel", cancel, methods=["POST"]),
    Route("/graph", graph, methods=["GET"]),
    Route("/steps", steps, methods=["GET"]),
    Route("/log", log, methods=["GET"]),
    Route("/log/{id:int}", log_entry, methods=["GET"]),
    Route("/history", history, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/config/loaded", config_loaded, methods=["POST"]),
    Route("/daemon/shutdown", shutdown, methods=["POST"]),
]
