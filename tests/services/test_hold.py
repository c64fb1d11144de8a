"""Bounded waits: a client held while no application serves gets an answer after
``hold_limit`` instead of hanging; within the limit it is served by the next start.

Real keepers, the test HTTP service and real loopback sockets, for the kernel-backlog
handover (``listen-fds``) and for the keeper's relay (``proxy``: the service binds its own
private port with ``--bind``).
"""

from __future__ import annotations

import socket
import sys
from dataclasses import replace

import pytest

from activeupgrade.config.model import Handover, HealthKind, HealthSpec, ServiceSpec, SocketSpec
from activeupgrade.errors import ServiceError
from activeupgrade.platform.services.supervisor import Supervisor

from .helpers import HTTPAPP, app_spec, free_port


def spec_for(handover: Handover, port: int) -> ServiceSpec:
    spec = replace(app_spec("shop", port), hold_limit=0.5)
    if handover is Handover.PROXY:
        upstream = free_port()
        spec = replace(
            spec, handover=Handover.PROXY,
            command=(sys.executable, str(HTTPAPP), "--bind", f"127.0.0.1:{upstream}"),
            sockets=(SocketSpec("http", f"127.0.0.1:{port}",
                                upstream=f"127.0.0.1:{upstream}"),),
            health=HealthSpec(HealthKind.HTTP, f"http://127.0.0.1:{upstream}/", timeout=2.0,
                              interval=0.02))
    return spec


def ask(port: int) -> bytes:
    """Connect and send a request; what came back (b"" when the connection was closed).
    The 60 s timeout is a hang: the failure this test is about."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
        return data


@pytest.mark.parametrize("handover", [Handover.LISTEN_FDS, Handover.PROXY])
def test_held_client_is_answered_after_the_limit(sup: Supervisor, handover: Handover) -> None:
    port = free_port()
    spec = spec_for(handover, port)
    sup.start(spec)
    assert b" 200 " in ask(port)
    sup.stop(spec)  # no application serves from now on; the socket stays held
    assert ask(port) == b""  # closed after the limit: an answer, not a hang
    st = sup.keeper_status(spec)
    assert st is not None and st["answered_after_limit"] >= 1 and st["hold_limit"] == 0.5
    # A start within the limit serves the waiting client. (The changed limit replaces the
    # keeper, which no application runs under now.)
    spec = replace(spec, hold_limit=30.0)
    sup.start(spec)
    st = sup.keeper_status(spec)
    assert st is not None and st["hold_limit"] == 30.0
    sup.stop(spec)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        sup.start(spec)
        assert s.recv(4096).startswith(b"HTTP/1.0 200")


def test_proxy_without_upstream_is_refused_before_anything_starts(sup: Supervisor) -> None:
    spec = replace(app_spec("shop", free_port()), handover=Handover.PROXY)
    with pytest.raises(ServiceError, match="upstream"):
        sup.start(spec)
    assert sup.keeper_status(spec) is None
