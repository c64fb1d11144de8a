"""The API: a Starlette application over the daemon.

Errors become responses here and only here: an ``AUError`` is a JSON body with its message,
hint and exit code (HTTP 400/409/...); anything else is a 500 with the message. The OpenAPI
description is built from the routes' docstrings.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from activeupgrade import __version__
from activeupgrade.activity import ActivityLog
from activeupgrade.bus import Bus
from activeupgrade.engine.engine import Engine
from activeupgrade.engine.platform import Platform
from activeupgrade.errors import (
    AUError,
    DiskFullError,
    FilesystemError,
    StateError,
    UsageError,
    os_error,
)
from activeupgrade.instance import Instance
from activeupgrade.store.db import Store


class DaemonHandle(Protocol):
    """What the API's handlers reach through ``request.app.state.daemon``: the daemon
    (``daemon.py``, above this layer) provides it; the API never imports the daemon."""

    @property
    def instance(self) -> Instance: ...
    @property
    def store(self) -> Store: ...
    @property
    def bus(self) -> Bus: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def platform(self) -> Platform: ...
    @property
    def log(self) -> ActivityLog: ...
    @property
    def servers(self) -> list[Any]:
        """uvicorn servers of this daemon: the Unix socket first, then any TCP listener."""

    async def open_web_console(self, listen: str, remote: bool) -> dict[str, Any]:
        """Open (or find) the web console's TCP listener; answers its URL and token."""

ROUTE_MODULES: tuple[str, ...] = (
    "core",
    "events",
    "operations",
    "web",
    "services",
    "volumes",
    "side",
    "packages",
    "config",
    "checks",
)
"""Modules under ``activeupgrade.api.routes`` whose ``routes`` are mounted."""

STATUS_FOR = {StateError: 409, UsageError: 400}


def error_response(exc: AUError) -> JSONResponse:
    code = 400
    for cls, status in STATUS_FOR.items():
        if isinstance(exc, cls):
            code = status
    if exc.exit_code >= 10 and not isinstance(exc, StateError):
        code = 422
    if isinstance(exc, FilesystemError):  # the host's fault, not the request's
        code = 507 if isinstance(exc, DiskFullError) else 503
    return JSONResponse(exc.to_dict(), status_code=code)


async def au_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AUError)
    return error_response(exc)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed) as error documents."""
    assert isinstance(exc, HTTPException)
    what = "no such route" if exc.status_code == 404 else str(exc.detail)
    err = UsageError(f"{request.method} {request.url.path[:200]}: {what}",
                     hint="GET /openapi.json lists the routes and their methods.")
    return JSONResponse(err.to_dict(), status_code=exc.status_code)


async def bug_handler(request: Request, exc: Exception) -> Response:
    found = os_error(exc, f"answer {request.method} {request.url.path[:100]}") if isinstance(
        exc, OSError) else None
    if found is not None:  # a full, read-only or failing disk: not a bug
        return JSONResponse(found.to_dict(), status_code=507 if isinstance(
            found, DiskFullError) else 503)
    return JSONResponse(
        {"error": "InternalError", "message": f"{type(exc).__name__}: {exc}", "hint":
         "This is a bug; the daemon log has the details.", "exit_code": 1, "details": {}},
        status_code=500,
    )


def collect_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"activeupgrade.api.routes.{name}")
        routes.extend(module.routes)
    return routes


def openapi(routes: list[BaseRoute]) -> dict[str, Any]:
    """An OpenAPI 3.1 description of every route (summary from the handler's docstring)."""
    paths: dict[str, Any] = {}
    for r in routes:
        if not isinstance(r, Route):
            continue
        doc = (r.endpoint.__doc__ or r.name or "").strip()
        summary, _, description = doc.partition("\n")
        for method in sorted((r.methods or set()) - {"HEAD"}):
            params = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in r.param_convertors
            ]
            paths.setdefault(r.path, {})[method.lower()] = {
                "summary": summary,
                "description": description.strip(),
                "operationId": f"{r.name}_{method.lower()}",
                "parameters": params,
                "responses": {
                    "200": {"description": "success", "content": {"application/json": {}}},
                    "default": {"description": "an error: error, message, hint, exit_code",
                                "content": {"application/json": {"schema": {
                                    "$ref": "#/components/schemas/Error"}}}},
                },
            }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Active Upgrade for Linux API", "version": __version__},
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object",
            "required": ["error", "message", "hint", "exit_code"],
            "properties": {
                "error": {"type": "string"}, "message": {"type": "string"},
                "hint": {"type": "string"}, "exit_code": {"type": "integer"},
                "details": {"type": "object"},
            },
        }}},
    }


def build_app(daemon: DaemonHandle, middleware: list[Middleware] | None = None) -> Starlette:
    routes = collect_routes()
    description = openapi(routes)

    async def openapi_json(request: Request) -> Response:
        """The OpenAPI description of this API."""
        return Response(json.dumps(description), media_type="application/json")

    routes.append(Route("/openapi.json", openapi_json, methods=["GET"], name="openapi"))
    description["paths"]["/openapi.json"] = {"get": {"summary": "The OpenAPI description",
                                                     "responses": {"200": {"description": "ok"}}}}
    app = Starlette(
        routes=routes,
        middleware=middleware or [],
        exception_handlers={AUError: au_error_handler, HTTPException: http_error_handler,
                            Exception: bug_handler},
    )
    app.state.daemon = daemon
    return app


MAX_BODY = 4 * 1024 * 1024
"""Largest request body read (a configuration text is at most 1 MiB)."""
MAX_DEPTH = 32
"""Deepest nesting of lists and objects in a request body."""


def _constant(name: str) -> Any:
    raise UsageError(f"the request body contains {name}, which is not a JSON number",
                     hint="Send finite numbers only.")


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    items = (value.values() if isinstance(value, dict)
             else value if isinstance(value, list) else ())
    return max((_depth(v, level + 1) for v in items), default=level)


def parse_body(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object ({} when empty); a UsageError naming what is wrong
    when it is too large, not UTF-8, not JSON, too deep, not an object, or holds text
    that cannot be stored (lone surrogates) or numbers that are not finite."""
    if not body:
        return {}
    if len(body) > MAX_BODY:
        raise UsageError(f"the request body is too large ({len(body)} bytes; at most "
                         f"{MAX_BODY})", hint="Send a smaller request.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"the request body is not UTF-8 (byte {exc.start})",
                         hint="Send a JSON object encoded as UTF-8.") from None
    try:
        data = json.loads(text, parse_constant=_constant)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # storable text only
    except RecursionError:
        raise UsageError(f"the request body nests deeper than {MAX_DEPTH} levels") from None
    except UnicodeEncodeError:
        raise UsageError("the request body contains a lone surrogate (\\ud800-\\udfff)",
                         hint="Send text as valid Unicode.") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of thousands of digits
        raise UsageError(f"the request body is not JSON: {str(exc)[:120]}",
                         hint="Send a JSON object.") from None
    if not isinstance(data, dict):
        raise UsageError("the request body must be a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise UsageError(f"the request body nests deeper than {MAX_DEPTH} levels")
    return data


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object ({} when empty); a UsageError when malformed."""
    return parse_body(await request.body())


MAX_ID = 2**63 - 1
"""Largest id or count the store can hold (SQLite integers are 64-bit)."""


def int_param(request: Request, name: str, default: int, *, low: int = 0,
              high: int = MAX_ID) -> int:
    """Query parameter ``name`` as an integer in [low, high]; a UsageError otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        # Quoted as JSON: a Python repr of a cut value could end in "{'" and read as a dict.
        raise UsageError(f"query parameter `{name}` must be an integer, got "
                         f"{json.dumps(raw[:40])}",
                         hint=f"Give a whole number from {low} to {high}.") from None
    if not low <= value <= high:
        raise UsageError(f"query parameter `{name}` must be from {low} to {high}, got "
                         f"{raw[:40]}", hint=f"Give a whole number from {low} to {high}.")
    return value


def int_field(body: dict[str, Any], name: str, *, low: int = 0, high: int = MAX_ID,
              default: int | None = None) -> int:
    """Body field ``name`` as a whole number in [low, high]; a UsageError otherwise."""
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"`{name}` must be a whole number, got {_shown(value)}",
                         hint=f"Give a whole number from {low} to {high}.")
    if not low <= value <= high:
        raise UsageError(f"`{name}` must be from {low} to {high}, got {_shown(value)}",
                         hint=f"Give a whole number from {low} to {high}.")
    return value


def number_field(body: dict[str, Any], name: str, *, low: float, high: float,
                 default: float | None = None) -> float:
    """Body field ``name`` as a finite number in [low, high]; a UsageError otherwise."""
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            low <= value <= high):
        raise UsageError(f"`{name}` must be a number from {low:g} to {high:g}, got "
                         f"{_shown(value)}", hint=f"Give a number from {low:g} to {high:g}.")
    return float(value)


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    text = json.dumps(value) if not isinstance(value, int) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def daemon_of(request: Request) -> DaemonHandle:
    d: DaemonHandle = request.app.state.daemon
    return d
