"""Listening sockets held by a service's keeper (SPEC §5, socket activation).

The keeper creates these once and keeps them open for the life of the service, across
every stop/start of the application, so that clients connecting while the application is
replaced wait in the kernel's accept queue instead of being refused.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass

from activeupgrade.errors import ServiceError
from activeupgrade.instance import unix_path


@dataclass(frozen=True)
class ListenAddress:
    """A parsed ``listen`` value: TCP host/port or a Unix socket path."""

    family: socket.AddressFamily
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_unix(self) -> bool:
        return self.family == socket.AF_UNIX

    def __str__(self) -> str:
        if self.is_unix:
            return self.path
        if self.family == socket.AF_INET6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_listen(listen: str) -> ListenAddress:
    """``HOST:PORT``, ``[V6]:PORT`` or an absolute path; anything else is a ServiceError."""
    text = listen.strip()
    if text.startswith("/"):
        return ListenAddress(socket.AF_UNIX, path=text)
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise ServiceError(
            f"bad listen address {listen!r}",
            hint="Use HOST:PORT (e.g. 127.0.0.1:8080), [::1]:PORT, or an absolute Unix path.",
        )
    port = int(port_text)
    if not 0 < port < 65536:
        raise ServiceError(f"bad port in listen address {listen!r}", hint="Use 1..65535.")
    if host.startswith("[") and host.endswith("]"):
        return ListenAddress(socket.AF_INET6, host=host[1:-1], port=port)
    return ListenAddress(socket.AF_INET, host=host, port=port)


def open_listener(listen: str, backlog: int) -> socket.socket:
    """Create, bind and listen; SO_REUSEADDR so a restarted keeper can rebind at once."""
    addr = parse_listen(listen)
    sock = socket.socket(addr.family, socket.SOCK_STREAM)
    try:
        if addr.is_unix:
            _remove_stale_unix(addr.path)
            os.makedirs(os.path.dirname(addr.path) or "/", exist_ok=True)
            sock.bind(unix_path(addr.path))
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if addr.family == socket.AF_INET6:
                # [::]:80 beside 0.0.0.0:80, as nginx's `listen [::]:80` expects.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((addr.host, addr.port))
        # The backlog is what lets connecting clients wait through a switchover.
        sock.listen(max(1, backlog))
    except OSError as exc:
        sock.close()
        raise ServiceError(
            f"cannot listen on {addr}: {exc.strerror or exc}",
            hint="Another process may hold the address; stop it or change `listen`.",
        ) from exc
    return sock


def _remove_stale_unix(path: str) -> None:
    """A leftover socket file from a dead keeper would make bind fail; files are kept."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ServiceError(
            f"{path} exists and is not a socket", hint="Remove it or choose another path."
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(unix_path(path))
    except OSError:
        os.unlink(path)  # nobody listens: stale
    else:
        raise ServiceError(
            f"{path} is in use by another process", hint="Stop it or choose another path."
        )
    finally:
        probe.close()
