"""Opening the web console: ``POST /web/start`` asks the daemon to open its TCP listener.

The listener itself (a second uvicorn server serving the consoles' pages and this API
under ``/api/`` behind the token) belongs to the web console (``ui/web/listener.py``); the
daemon composes the two, so this layer never builds a console.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.address import DEFAULT_LISTEN
from activeupgrade.api.server import daemon_of, read_json


async def start(request: Request) -> JSONResponse:
    """Open the web console's TCP listener: body ``{"listen": "HOST:PORT", "remote": bool}``.

    A non-loopback address is refused unless ``remote`` is true. Answers with the URL and
    the token; calling it again for the same address answers the same.
    """
    d = daemon_of(request)
    body = await read_json(request)
    listen = str(body.get("listen") or DEFAULT_LISTEN)
    return JSONResponse(await d.open_web_console(listen, bool(body.get("remote"))))


routes = [Route("/web/start", start, methods=["POST"])]
