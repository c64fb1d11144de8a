"""The web console: server-rendered pages over the daemon's own API.

Every page gets its data from the API routes (called in-process through an ASGI
transport), so the web console shows exactly what ``au`` shows, with the same error
messages. The whole API is mounted under ``/api/`` for the pages' script and for API
clients; ``AuthGate`` (``auth.py``) protects everything but the login page and static files.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from activeupgrade.activity import Entry, depth_map, render_json, render_text
from activeupgrade.api.server import build_app
from activeupgrade.errors import SecurityError
from activeupgrade.model.states import OperatorAction, Severity
from activeupgrade.present import console as pages
from activeupgrade.present import rollback
from activeupgrade.ui.web import configs
from activeupgrade.ui.web.auth import (
    AuthGate,
    WebAuth,
    cleared_cookie,
    session_cookie,
)
from activeupgrade.ui.web.base import HERE, TEMPLATES, Api, render

if TYPE_CHECKING:
    from activeupgrade.api.server import DaemonHandle as Daemon

LOGIN_DELAY = 0.5
"""Seconds a failed login waits before answering (slows guessing)."""

SEVERITY_ICONS = {
    Severity.DEBUG: "·", Severity.INFO: "ℹ", Severity.NOTICE: "●",
    Severity.WARNING: "⚠", Severity.ERROR: "✖", Severity.CRITICAL: "‼",
}
LOG_FILTERS = ("severity", "request", "side", "session", "event")
LOG_SHOWN = 2000
"""Entries the Activity Log page shows: the newest that match (saving takes them all)."""
LOG_PAGE = 10_000


async def home(request: Request) -> Response:
    return RedirectResponse("/upgrade", 303)


async def login_page(request: Request) -> Response:
    nxt = _safe_next(request.query_params.get("next", "/upgrade"))
    return TEMPLATES.TemplateResponse(request, "login.html", {
        "next": nxt, "error": "", "host": socket.gethostname()})


async def login(request: Request) -> Response:
    auth: WebAuth = request.app.state.auth
    form = await request.form()
    token = str(form.get("token", "")).strip()
    nxt = _safe_next(str(form.get("next", "/upgrade")))
    if not token or not auth.check_token(token):
        await asyncio.sleep(LOGIN_DELAY)
        return TEMPLATES.TemplateResponse(request, "login.html", {
            "next": nxt, "host": socket.gethostname(),
            "error": "That token is not valid. `au web` prints the token; it is also in "
                     "the file web-token of the instance folder."}, status_code=401)
    session_id, _ = auth.open_session()
    return RedirectResponse(nxt, 303, headers={"Set-Cookie": session_cookie(session_id)})


def _safe_next(target: str) -> str:
    # Only same-site paths: "//host" or "/\host" would leave the console.
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/upgrade"
    return target


async def logout(request: Request) -> Response:
    auth: WebAuth = request.app.state.auth
    auth.close_session(str(request.scope.get("au_session_id", "")))
    return RedirectResponse("/login", 303, headers={"Set-Cookie": cleared_cookie()})


async def upgrade(request: Request) -> Response:
    api: Api = request.app.state.api
    status, _ = await api.get("/status")
    writes, _ = await api.get("/side/writes") if (status or {}).get("upgrade_state") in (
        "Split", "PrepareMerge") else (None, None)
    return await render(request, "upgrade", "Active Upgrade",
                        buttons=pages.action_buttons(status or {}),
                        retry=pages.retry_button(status or {}),
                        writes=pages.side_writes(writes),
                        rollback={"confirm": rollback.confirm_line(status or {}),
                                  "checkpoints": rollback.checkpoint_lines(status or {})})


async def summary(request: Request) -> Response:
    api: Api = request.app.state.api
    status, _ = await api.get("/status")
    path = request.query_params.get("file") or (status or {}).get("config", "")
    plan_text, plan_error = "", None
    if request.method == "POST":
        # The dry run of the whole session, in the words of `au plan`.
        from activeupgrade.present.plan import plan_lines

        plan, plan_error = await api.post("/plan", {"config": path} if path else {})
        plan_text = "\n".join(plan_lines(plan)) if plan else ""
    text, error = await config_summary(api, path)
    steps, steps_error = await api.get("/steps", config=path or None)
    return await render(request, "summary", "Upgrade Summary", file=path, summary=text,
                        summary_error=error, steps=steps or {}, steps_error=steps_error,
                        has_plan=api.has("/plan"), plan_text=plan_text,
                        plan_error=plan_error)


async def latest_log(api: Api, keep: int, filters: dict[str, str]
                     ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, int]:
    """The newest ``keep`` matching entries (the API pages from the oldest) and how many
    matched in all."""
    window: list[dict[str, Any]] = []
    after, total = 0, 0
    while True:
        page, error = await api.get("/log", after=after, limit=LOG_PAGE, **filters)
        if error or not page:
            return window, error, total
        total += len(page)
        window = (window + page)[-keep:]
        after = page[-1]["id"]
        if len(page) < LOG_PAGE:
            return window, None, total


def _log_query(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in LOG_FILTERS}


async def log_page(request: Request) -> Response:
    api: Api = request.app.state.api
    filters = _log_query(request)
    raw, error, total = await latest_log(api, LOG_SHOWN, filters)
    entries = [Entry.from_dict(d) for d in raw]
    ordered = pages.tree_order(entries)
    depth = depth_map(entries)
    rows = [{"e": e, "depth": depth[e.id], "icon": SEVERITY_ICONS[e.severity]} for e in ordered]
    query = urlencode({k: v for k, v in filters.items() if v})
    return await render(request, "log", "Activity Log", rows=rows, error=error,
                        filters=filters, severities=[s.value for s in Severity],
                        query=query, live=not any(filters.values()), total=total,
                        last_id=max((e.id for e in entries), default=0))


async def log_entry(request: Request) -> Response:
    api: Api = request.app.state.api
    entry_id = request.path_params["id"]
    data, error = await api.get(f"/log/{entry_id}")
    entry = Entry.from_dict(data["entry"]) if data else None
    children = [Entry.from_dict(c) for c in (data or {}).get("children", [])]
    return await render(request, "entry", f"Activity Log entry {entry_id}", entry=entry,
                        children=children, error=error,
                        icon=SEVERITY_ICONS[entry.severity] if entry else "",
                        facts=pages.entry_facts(entry) if entry else [],
                        output=pages.entry_output(children))


async def log_export(request: Request) -> Response:
    api: Api = request.app.state.api
    filters = _log_query(request)
    raw, error = await api.get("/log", limit=1_000_000, **filters)
    if error:
        return PlainTextResponse(error.get("message", "error"), status_code=400)
    entries = [Entry.from_dict(d) for d in raw]
    as_json = request.query_params.get("format") == "json"
    body = render_json(entries) if as_json else render_text(entries)
    name = "activity-log." + ("json" if as_json else "txt")
    return Response(body, media_type="application/json" if as_json else "text/plain",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def metrics(request: Request) -> Response:
    """Prometheus metrics on the listener (behind the token like everything else: a
    scrape sends ``Authorization: Bearer TOKEN``)."""
    api: Api = request.app.state.api
    resp = await api.http.get("/metrics")
    return Response(resp.content, status_code=resp.status_code,
                    media_type=resp.headers.get("content-type"))


async def not_here(request: Request) -> Response:
    return JSONResponse(SecurityError(
        "listeners are opened only through the daemon's Unix socket",
        hint="Run `au web` on the host.").to_dict(), status_code=403)


def build_web_app(daemon: Daemon, auth: WebAuth) -> ASGIApp:
    """The listener's application: pages, static files and the API under ``/api``."""
    api_app = build_app(daemon)
    routes: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/upgrade", upgrade, methods=["GET"]),
        Route("/summary", summary, methods=["GET", "POST"]),
        Route("/config", configs.page, methods=["GET"]),
        Route("/config/save", configs.save, methods=["POST"]),
        Route("/config/new", configs.create, methods=["POST"]),
        Route("/config/load", configs.load, methods=["POST"]),
        Route("/log", log_page, methods=["GET"]),
        Route("/log/export", log_export, methods=["GET"]),
        Route("/log/{id:int}", log_entry, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        # Only the Unix socket (the host's root) may open listeners.
        Route("/api/web/start", not_here, methods=["GET", "POST"]),
        Mount("/api", app=api_app),
    ]
    app = Starlette(routes=routes)
    app.state.daemon = daemon
    app.state.auth = auth
    app.state.api = Api(api_app)
    TEMPLATES.env.globals["actions"] = [a.value for a in OperatorAction]
    TEMPLATES.env.filters["json"] = lambda v: json.dumps(v)
    return AuthGate(app, auth)


async def config_summary(api: Api, path: str) -> tuple[str, dict[str, Any] | None]:
    """The upgrade summary in plain words (the configuration part's route)."""
    if not api.has("/config/summary"):
        return "", {"message": "this daemon has no configuration summary (/config/summary)",
                    "hint": ""}
    data, error = await api.get("/config/summary", file=path or None)
    if error:
        return "", error
    return str(data.get("text", "")), None
