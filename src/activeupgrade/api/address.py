"""The web console's listening address: ``HOST:PORT`` parsed and judged (loopback or not),
without importing the web stack (the CLI uses it before anything is started)."""

from __future__ import annotations

import ipaddress

from activeupgrade.errors import UsageError

DEFAULT_LISTEN = "127.0.0.1:8470"


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
