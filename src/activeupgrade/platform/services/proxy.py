"""The keeper's relay for the ``proxy`` handover (like ``systemd-socket-proxyd``).

Daemons such as Redis and PostgreSQL bind their own port and cannot take a held socket.
For them the keeper keeps the public address open itself and relays every connection to
the daemon's private ``upstream`` address. A gate decides when connections go through:

- open: each accepted connection is relayed to the upstream at once;
- closed (the daemon stops, switches, starts, is not yet healthy): accepted connections
  wait in the keeper, never refused; they go through when the gate opens again, or are
  closed once they waited ``hold_limit`` seconds (an answer instead of a hang).

Before the daemon is told to stop, the keeper closes the gate and lets the relayed
connections finish (``drain``), so no request in flight is cut by the stop.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

from activeupgrade.instance import unix_path
from activeupgrade.platform.services.sockets import parse_listen

CHUNK = 65536
RETRY = 0.01
"""Pause between connection attempts to an upstream that does not answer yet."""


def _connect(upstream: str, timeout: float) -> socket.socket:
    addr = parse_listen(upstream)
    sock = socket.socket(addr.family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(unix_path(addr.path) if addr.is_unix else (addr.host, addr.port))
    except OSError:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both ends closed their sending side."""
    open_ends = {a: b, b: a}
    while open_ends:
        readable, _, _ = select.select(list(open_ends), [], [])
        for src in readable:
            dst = open_ends[src]
            try:
                data = src.recv(CHUNK)
            except OSError:
                data = b""
            if data:
                try:
                    dst.sendall(data)
                    continue
                except OSError:
                    return
            # EOF from src: pass the half-close on, stop reading src.
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            del open_ends[src]


class Relay:
    """Accepts on one held listener and relays to its upstream through the gate."""

    def __init__(self, listener: socket.socket, upstream: str, hold_limit: float) -> None:
        self.listener = listener
        self.upstream = upstream
        self.hold_limit = hold_limit
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.idle = threading.Condition(self.lock)
        self.relayed = 0
        self.waited_out = 0
        self.closing = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._accept_loop, daemon=True, name="relay-accept").start()

    def _accept_loop(self) -> None:
        while not self.closing.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.2)
            if not ready:
                continue
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return  # the listener was closed
            threading.Thread(target=self._serve, args=(client, time.monotonic()),
                             daemon=True).start()

    def _serve(self, client: socket.socket, accepted: float) -> None:
        with client:
            upstream = self._reach(accepted)
            if upstream is None:
                with self.lock:
                    self.waited_out += 1
                return  # waited hold_limit: closing the connection is its answer
            with upstream:
                try:
                    _pump(client, upstream)
                finally:
                    with self.lock:
                        self.active -= 1
                        self.idle.notify_all()

    def _reach(self, accepted: float) -> socket.socket | None:
        """Wait for the gate, then connect; counts the relay as active under the lock."""
        deadline = accepted + self.hold_limit
        while not self.closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or not self.gate.wait(left):
                return None
            with self.lock:
                if not self.gate.is_set():
                    continue  # closed again meanwhile: wait for the next opening
                self.active += 1
            try:
                sock = _connect(self.upstream, max(0.05, min(1.0, left)))
            except OSError:
                with self.lock:
                    self.active -= 1
                    self.idle.notify_all()
                time.sleep(RETRY)
                continue
            with self.lock:
                self.relayed += 1
            return sock
        return None

    def open(self) -> None:
        self.gate.set()

    def hold(self, drain: float) -> int:
        """Close the gate and wait up to ``drain`` s for relayed connections to end; returns
        how many were still open."""
        self.gate.clear()
        end = time.monotonic() + max(0.0, drain)
        with self.lock:
            while self.active and time.monotonic() < end:
                self.idle.wait(max(0.001, end - time.monotonic()))
            return self.active

    def close(self) -> None:
        self.closing.set()
        self.gate.set()

    def status(self) -> dict[str, object]:
        with self.lock:
            return {"upstream": self.upstream, "open": self.gate.is_set(),
                    "active": self.active, "relayed": self.relayed,
                    "waited_out": self.waited_out}
