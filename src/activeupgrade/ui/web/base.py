"""What every page of the web console shares: the in-process API client, the templates
and ``render`` (a page with the status bar)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from activeupgrade.present import console as pages
from activeupgrade.ui.web.auth import BrowserSession

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))


class Api:
    """In-process calls to the mounted API (same handlers, same errors as over the socket)."""

    def __init__(self, app: ASGIApp) -> None:
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                      base_url="http://au", timeout=600.0)
        self.paths: set[str] = {r.path for r in getattr(app, "routes", [])
                                if isinstance(r, Route)}

    def has(self, path: str) -> bool:
        """Whether a route exists (the config and plan routes belong to another part)."""
        return path in self.paths

    async def get(self, route: str, **params: Any) -> tuple[Any, dict[str, Any] | None]:
        """(data, None) on success, (None, error document) when the API refused."""
        resp = await self.http.get(route, params={k: v for k, v in params.items() if v})
        return _split(resp)

    async def post(self, route: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        resp = await self.http.post(route, json=body)
        return _split(resp)


def _split(resp: httpx.Response) -> tuple[Any, dict[str, Any] | None]:
    try:
        data = resp.json()
    except ValueError:
        data = {"message": resp.text[:500], "hint": ""}
    if resp.status_code >= 400:
        if not isinstance(data, dict):
            data = {"message": str(data), "hint": ""}
        return None, data
    return data, None


def _csrf(request: Request) -> str:
    session = request.scope.get("au_session")
    return session.csrf if isinstance(session, BrowserSession) else ""


async def render(request: Request, page: str, title: str, **context: Any) -> Response:
    api: Api = request.app.state.api
    status, _ = await api.get("/status")
    return TEMPLATES.TemplateResponse(request, f"{page}.html", {
        "page": page, "title": title, "host": socket.gethostname(), "csrf": _csrf(request),
        "status": status or {}, "bar": pages.status_bar(status or {}),
        "confirms": pages.confirmations(), **context,
    })
