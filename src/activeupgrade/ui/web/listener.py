"""The web console's TCP listener inside the daemon (asked for by ``POST /web/start``).

The listener is a second uvicorn server on the daemon's running event loop, serving the
web console and the whole API under ``/api/`` behind the token (``ui/web/auth.py``). It is
appended to ``daemon.servers`` so stopping the daemon stops it. Binding the socket here
turns "address in use" into an error for the operator instead of a dead task. The daemon
keeps its open listeners (``Listeners``) and calls ``open_listener``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from activeupgrade.api.address import DEFAULT_LISTEN, is_loopback, parse_listen
from activeupgrade.api.server import DaemonHandle
from activeupgrade.errors import SecurityError, UsageError
from activeupgrade.model.states import Severity
from activeupgrade.ui.web.app import build_web_app
from activeupgrade.ui.web.auth import WebAuth, load_or_create_token


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the daemon's main server."""

    task: asyncio.Task[None] | None = None
    """The task serving it (the event loop holds tasks only weakly)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


Listeners = dict[tuple[str, int], QuietServer]
"""A daemon's open web console listeners, by address (owned by the daemon)."""


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


async def open_listener(d: DaemonHandle, listeners: Listeners, listen: str, remote: bool
                        ) -> dict[str, Any]:
    """Open the web console on ``listen`` (``HOST:PORT``) for daemon ``d``; a non-loopback
    address is refused unless ``remote``. Answers the URL and the token; asking again for an
    open address answers the same with ``already``."""
    host, port = parse_listen(listen or DEFAULT_LISTEN)
    if not is_loopback(host) and not remote:
        raise SecurityError(
            f"{host} is not a loopback address: the web console would be reachable from "
            "the network",
            hint="Name the address explicitly with --listen to accept that.",
        )
    token = await asyncio.to_thread(load_or_create_token, d.instance)
    answer = {"url": _url(host, port), "listen": f"{host}:{port}", "token": token,
              "token_file": str(d.instance.web_token), "loopback": is_loopback(host)}
    if (host, port) in listeners and not listeners[(host, port)].should_exit:
        return {**answer, "already": True}
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
    return {**answer, "already": False}
