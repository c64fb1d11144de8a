"""A write load for the data services' tests and benchmark: Redis and PostgreSQL.

Each thread opens a connection, writes one new number, waits for the acknowledgement and
closes, again and again (Redis: ``SADD writes N`` answered ``:1``; PostgreSQL: ``INSERT INTO
writes VALUES (N)`` answered by CommandComplete and ReadyForQuery, in autocommit). The
acknowledged numbers are recorded: afterwards ``stored`` reads back what the database holds
(through its private address) and every acknowledged write must be there. Failures are
recorded with their cause; ``refused`` are the connections the address refused.

The wire protocols are spoken directly (RESP, PostgreSQL's frontend/backend protocol with
trust authentication) so that the tests need no client library.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from .load import Report, Sample


class ProtocolError(OSError):
    """The server answered something other than the acknowledgement."""


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("closed before the acknowledgement")
        data += chunk
    return data


def _line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(1)
        if not chunk:
            raise ConnectionResetError("closed before the acknowledgement")
        data += chunk
    return data[:-2]


def redis_command(s: socket.socket, *args: str) -> bytes:
    s.sendall(f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args))
    return _line(s)


def redis_write(s: socket.socket, n: int) -> None:
    reply = redis_command(s, "SADD", "writes", str(n))
    if reply != b":1":
        raise ProtocolError(f"redis answered {reply[:60]!r}")


def redis_stored(s: socket.socket) -> set[int]:
    head = redis_command(s, "SMEMBERS", "writes")
    if not head.startswith(b"*"):
        raise ProtocolError(f"redis answered {head[:60]!r}")
    out = set()
    for _ in range(int(head[1:])):
        size = int(_line(s)[1:])
        out.add(int(_recv_exact(s, size + 2)[:-2]))
    return out


def _pg_message(s: socket.socket) -> tuple[bytes, bytes]:
    kind = _recv_exact(s, 1)
    (length,) = struct.unpack("!I", _recv_exact(s, 4))
    return kind, _recv_exact(s, length - 4)


def _pg_until_ready(s: socket.socket) -> list[tuple[bytes, bytes]]:
    got = []
    while True:
        kind, body = _pg_message(s)
        got.append((kind, body))
        if kind == b"E":
            raise ProtocolError("postgres: " + body.decode(errors="replace")
                                .replace("\0", " ")[:120])
        if kind == b"Z":
            return got


def pg_login(s: socket.socket) -> None:
    params = b"user\0postgres\0database\0postgres\0\0"
    s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
    _pg_until_ready(s)


def pg_query(s: socket.socket, sql: str) -> list[tuple[bytes, bytes]]:
    body = sql.encode() + b"\0"
    s.sendall(b"Q" + struct.pack("!I", 4 + len(body)) + body)
    return _pg_until_ready(s)


def pg_write(s: socket.socket, n: int) -> None:
    pg_login(s)
    got = pg_query(s, f"INSERT INTO writes VALUES ({n})")
    if not any(k == b"C" for k, _ in got):
        raise ProtocolError("postgres did not complete the insert")
    s.sendall(b"X\0\0\0\4")


def pg_stored(s: socket.socket) -> set[int]:
    pg_login(s)
    out = set()
    for kind, body in pg_query(s, "SELECT n FROM writes"):
        if kind == b"D":
            (size,) = struct.unpack("!i", body[2:6])
            out.add(int(body[6:6 + size]))
    return out


WRITERS = {"redis": redis_write, "postgres": pg_write}
READERS = {"redis": redis_stored, "postgres": pg_stored}


@dataclass
class Writes:
    kind: str
    host: str
    port: int
    threads: int = 4
    timeout: float = 30.0
    samples: list[Sample] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _one(self) -> Sample:
        with self._lock:
            n = next(self._numbers)
        sent = time.time()
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as s:
                WRITERS[self.kind](s, n)
        except OSError as exc:
            return Sample(sent, time.time(), False, error=f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.acked.add(n)
        return Sample(sent, time.time(), True, server=f"{self.kind} {n}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample = self._one()
            with self._lock:
                self.samples.append(sample)
            if not sample.ok:
                time.sleep(0.005)

    def start(self) -> Writes:
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"writes-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.samples)

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        target = self.count() + n
        end = time.time() + timeout
        while self.count() < target and time.time() < end:
            time.sleep(0.01)

    def stop(self) -> Report:
        self._stop.set()
        for t in self._workers:
            t.join(self.timeout + 5)
        return Report(list(self.samples))

    def refused(self) -> list[Sample]:
        return [s for s in self.samples if "ConnectionRefused" in s.error]


def stored(kind: str, host: str, port: int) -> set[int]:
    """What the database holds now (read through ``host:port``)."""
    with socket.create_connection((host, port), timeout=30) as s:
        return READERS[kind](s)
