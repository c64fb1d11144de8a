"""A load client for the switchover tests and the merge benchmark.

Several threads send ``GET /`` over fresh loopback TCP connections as fast as answers come
back, and record every request: when it was sent, when it was answered, by which process
(the test service answers ``<version> <pid>``), or how it failed.

With ``keepalive`` each thread keeps one HTTP/1.1 connection open and reuses it, as browsers
and proxies do. A server may close an idle keep-alive connection at any time (RFC 9112
§9.3.1); a client then sends the request again on a new connection, which the sample counts
in ``retried``. A connection that breaks after the request was answered in part, or a new
connection that fails, is a failure.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Sample:
    sent: float
    done: float
    ok: bool
    server: str = ""
    error: str = ""
    retried: int = 0

    @property
    def wait(self) -> float:
        return self.done - self.sent


@dataclass
class Load:
    host: str
    port: int
    threads: int = 8
    timeout: float = 30.0
    keepalive: bool = False
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _one(self) -> Sample:
        sent = time.time()
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            if head[:8] not in (b"HTTP/1.0", b"HTTP/1.1") or head[9:12] != b"200":
                return Sample(sent, time.time(), False, error=head[:40].decode(errors="replace"))
            return Sample(sent, time.time(), True, server=body.decode().strip())
        except OSError as exc:
            return Sample(sent, time.time(), False, error=f"{type(exc).__name__}: {exc}")

    def _request(self, conn: socket.socket) -> tuple[bytes, bytes]:
        """One GET on a kept-alive connection: (status line and headers, body)."""
        conn.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed before the answer" if not data else
                                           "closed in the middle of the answer")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed in the middle of the body")
            body += chunk
        return head, body

    def _kept(self, conn: socket.socket | None) -> tuple[Sample, socket.socket | None]:
        sent = time.time()
        retried = 0
        while True:
            fresh = conn is None
            try:
                if conn is None:
                    conn = socket.create_connection((self.host, self.port),
                                                    timeout=self.timeout)
                head, body = self._request(conn)
            except OSError as exc:
                if conn is not None:
                    conn.close()
                conn = None
                if not fresh and "middle" not in str(exc) and retried < 3:
                    retried += 1  # the server closed an idle keep-alive: send again
                    continue
                return Sample(sent, time.time(), False, error=f"{type(exc).__name__}: {exc}",
                              retried=retried), None
            if not head.startswith(b"HTTP/1.1 200"):
                return Sample(sent, time.time(), False, error=head[:40].decode(
                    errors="replace"), retried=retried), conn
            if b"connection: close" in head.lower():
                conn.close()
                conn = None
            return Sample(sent, time.time(), True, server=body.decode().strip(),
                          retried=retried), conn

    def _loop(self) -> None:
        conn: socket.socket | None = None
        while not self._stop.is_set():
            if self.keepalive:
                sample, conn = self._kept(conn)
            else:
                sample = self._one()
            with self._lock:
                self.samples.append(sample)
            if not sample.ok:
                time.sleep(0.005)  # a refused connection returns at once: do not spin
        if conn is not None:
            conn.close()

    def start(self) -> Load:
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"load-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self) -> Report:
        self._stop.set()
        for t in self._workers:
            t.join(self.timeout + 5)
        return Report(list(self.samples))

    def count(self) -> int:
        with self._lock:
            return len(self.samples)

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        """Wait until ``n`` more requests were answered (the load really runs)."""
        target = self.count() + n
        end = time.time() + timeout
        while self.count() < target and time.time() < end:
            time.sleep(0.01)


@dataclass
class Report:
    samples: list[Sample]

    @property
    def sent(self) -> int:
        return len(self.samples)

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    @property
    def longest_wait(self) -> float:
        return max((s.wait for s in self.samples), default=0.0)

    def percentile(self, p: float) -> float:
        waits = sorted(s.wait for s in self.samples)
        if not waits:
            return 0.0
        return waits[min(len(waits) - 1, int(len(waits) * p / 100.0))]

    def servers(self) -> list[str]:
        """Distinct answering processes, in order of their first answer."""
        seen: dict[str, float] = {}
        for s in sorted(self.samples, key=lambda s: s.done):
            if s.ok and s.server not in seen:
                seen[s.server] = s.done
        return list(seen)

    def first_and_last(self, version: str) -> tuple[float, float]:
        """When the first and the last answer of ``version`` came."""
        done = [s.done for s in self.samples if s.ok and s.server.split()[0] == version]
        return (min(done), max(done)) if done else (0.0, 0.0)

    def client_gap(self) -> float:
        """Longest time without any answer between the first and the last answer."""
        done = sorted(s.done for s in self.samples if s.ok)
        return max((b - a for a, b in itertools.pairwise(done)), default=0.0)

    def summary(self) -> dict[str, float | int]:
        return {
            "sent": self.sent, "failed": len(self.failed),
            "longest_wait_s": round(self.longest_wait, 4),
            "p99_s": round(self.percentile(99), 4), "p50_s": round(self.percentile(50), 4),
            "client_gap_s": round(self.client_gap(), 4),
            "retried": sum(s.retried for s in self.samples),
        }
