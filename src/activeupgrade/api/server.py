"""The API: a Starlette application over the daemon.

Errors become responses here and only here: an ``AUError`` is a JSON body with its message,
hint and exit code (HTTP 400/409/...); anything else is a 500 with the message. The OpenAPI
description is built from the routes' docstrings.
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from activeupgrade import __version__
from activeupgrade.errors import AUError, StateError, UsageError

if TYPE_CHECKING:
    from activeupgrade.daemon import Daemon

ROUTE_MODULES: tuple[str, ...] = (
    "core",
    "events",
    "web",
    "services",
    "volumes",
    "side",
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
    return JSONResponse(exc.to_dict(), status_code=code)


async def au_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AUError)
    return error_response(exc)


async def bug_handler(request: Request, exc: Exception) -> Response:
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


def build_app(daemon: Daemon, middleware: list[Middleware] | None = None) -> Starlette:
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
        exception_handlers={AUError: au_error_handler, Exception: bug_handler},
    )
    app.state.daemon = daemon
    return app


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object ({} when empty); a UsageError when malformed."""
    body = await request.body()
    if not body:
        return {}
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError("the request body must be a JSON object")
    return data


def daemon_of(request: Request) -> Daemon:
    d: Daemon = request.app.state.daemon
    return d
