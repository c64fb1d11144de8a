"""Health probes of a service (SPEC §5): TCP connect, HTTP GET expecting 2xx, or a command."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse
from collections.abc import Callable

from activeupgrade import proc
from activeupgrade.config.model import HealthKind, HealthSpec
from activeupgrade.errors import AUError, ServiceError
from activeupgrade.instance import unix_path
from activeupgrade.platform.services import program
from activeupgrade.platform.services.sockets import parse_listen


def probe(spec: HealthSpec) -> tuple[bool, str]:
    """One probe: (healthy, what was seen)."""
    try:
        match spec.kind:
            case HealthKind.NONE:
                return True, "no health check configured"
            case HealthKind.TCP:
                return _tcp(spec.target, spec.timeout)
            case HealthKind.HTTP:
                return _http(spec.target, spec.timeout)
            case HealthKind.COMMAND:
                program.trusted(spec.argv, what="health check", env=proc.base_env())
                done = proc.run(spec.argv, timeout=spec.timeout, check=False)
                return done.returncode == 0, done.explain() if done.returncode else "exit 0"
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    except AUError as exc:
        return False, exc.message
    return False, f"unknown health kind {spec.kind}"


def _tcp(target: str, timeout: float) -> tuple[bool, str]:
    addr = parse_listen(target)
    with socket.socket(addr.family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(unix_path(addr.path) if addr.is_unix else (addr.host, addr.port))
    return True, f"connected to {addr}"


def _http(url: str, timeout: float) -> tuple[bool, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ServiceError(f"bad health URL {url!r}", hint="Use http://HOST:PORT/PATH.")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return 200 <= resp.status < 300, f"HTTP {resp.status}"
    finally:
        conn.close()


def wait_healthy(
    spec: HealthSpec,
    timeout: float,
    *,
    alive: Callable[[], tuple[bool, str]] | None = None,
    check: Callable[[], None] | None = None,
    ready: Callable[[], bool] | None = None,
) -> tuple[float, str]:
    """Probe until healthy; returns (seconds waited, last detail) or raises ServiceError.

    ``alive`` reports whether the application still runs (a crash fails at once);
    ``check`` lets the caller's deadline or cancellation interrupt the wait; ``ready``
    (the instance's own readiness signal) must be true before the probe counts.
    """
    began = time.monotonic()
    detail = ""
    while True:
        if ready is not None and not ready():
            ok, detail = False, "the new instance has not said it is ready"
        else:
            ok, detail = probe(spec)
        if ok:
            return time.monotonic() - began, detail
        if alive is not None:
            running, why = alive()
            if not running:
                raise ServiceError(
                    f"the application exited before it was healthy ({why})",
                    hint="Read its log (`au service status NAME` shows where).",
                )
        if time.monotonic() - began > timeout:
            raise ServiceError(
                f"not healthy after {timeout:.0f}s: {detail}",
                hint="Check the application's log and its health check, or raise "
                "start_timeout.",
            )
        if check is not None:
            check()
        time.sleep(max(0.01, spec.interval))
