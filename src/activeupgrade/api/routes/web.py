"""Opening the web console: a TCP listener inside the daemon (``POST /web/start``).

The listener is a second uvicorn server on the daemon's running event loop, serving the
web console and the whole API under ``/api/`` behind the token (``ui/web/auth.py``). It is
appended to ``daemon.servers`` so stopping the daemon stops it. Binding the socket here
turns "address in use" into an error for the operator instead of a dead task.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import weakref
from collections.abc import Generator
from typing import TYPE_CHECKING

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activeupgrade.api.server import daemon_of, read_json
from activeupgrade.errors import SecurityError, UsageError
from activeupgrade.model.states import Severity

if TYPE_CHECKING:
    from activeupgrade.daemon import Daemon

DEFAULT_LISTEN = "127.0.0.1:8470"


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the daemon's main server."""

    task: asyncio.Task[None] | None = None
    """The task serving it (the event loop holds tasks only weakly)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


LISTENERS: weakref.WeakKeyDictionary[Daemon, dict[tuple[str, int], QuietServer]] = (
    weakref.WeakKeyDictionary()
)
"""Open listeners of each daemon, by address."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"--listen {text!r} is not HOST:PORT",
                         hint=f"For example --listen {DEFAULT_LISTEN}.")
    host = host.strip("[]")
    try:
        port = int(port_text)
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--listen {text!r} is not an IP address and port",
                         hint=f"For example --listen {DEFAULT_LISTEN} (names are not resolved)."
                         ) from None
    if not 0 < port < 65536:
        raise UsageError(f"port {port} is out of range", hint="Use 1-65535.")
    return host, port


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}",
                         hint="Choose another port with --listen 127.0.0.1:PORT.") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


async def start(request: Request) -> JSONResponse:
    """Open the web console's TCP listener: body ``{"listen": "HOST:PORT", "remote": bool}``.

    A non-loopback address is refused unless ``remote`` is true. Answers with the URL and
    the token; calling it again for the same address answers the same.
    """
    from activeupgrade.ui.web.app import build_web_app
    from activeupgrade.ui.web.auth import WebAuth, load_or_create_token

    d = daemon_of(request)
    body = await read_json(request)
    listen = str(body.get("listen") or DEFAULT_LISTEN)
    host, port = parse_listen(listen)
    if not is_loopback(host) and not body.get("remote"):
        raise SecurityError(
            f"{host} is not a loopback address: the web console would be reachable from "
            "the network",
            hint="Name the address explicitly with --listen to accept that.",
        )
    token = await asyncio.to_thread(load_or_create_token, d.instance)
    listeners = LISTENERS.setdefault(d, {})
    answer = {"url": _url(host, port), "listen": f"{host}:{port}", "token": token,
              "token_file": str(d.instance.web_token), "loopback": is_loopback(host)}
    if (host, port) in listeners and not listeners[(host, port)].should_exit:
        return JSONResponse({**answer, "already": True})
    sock = _bind(host, port)
    app = build_web_app(d, WebAuth(token))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    server = QuietServer(config)
    listeners[(host, port)] = server
    d.servers.append(server)
    server.task = asyncio.create_task(server.serve(sockets=[sock]))
    d.log.write("web.start", f"web console listening on {answer['url']}",
                severity=Severity.NOTICE if is_loopback(host) else Severity.WARNING,
                details={"listen": answer["listen"], "loopback": is_loopback(host)})
    return JSONResponse({**answer, "already": False})


routes = [Route("/web/start", start, methods=["POST"])]
