"""A load client for the switchover tests and the merge benchmark.

Several threads send ``GET /`` over fresh loopback TCP connections as fast as answers come
back, and record every request: when it was sent, when it was answered, by which process
(the test service answers ``<version> <pid>``), or how it failed.
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

    @property
    def wait(self) -> float:
        return self.done - self.sent


@dataclass
class Load:
    host: str
    port: int
    threads: int = 8
    timeout: float = 30.0
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
            if not head.startswith(b"HTTP/1.0 200"):
                return Sample(sent, time.time(), False, error=head[:40].decode(errors="replace"))
            return Sample(sent, time.time(), True, server=body.decode().strip())
        except OSError as exc:
            return Sample(sent, time.time(), False, error=f"{type(exc).__name__}: {exc}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample = self._one()
            with self._lock:
                self.samples.append(sample)
            if not sample.ok:
                time.sleep(0.005)  # a refused connection returns at once: do not spin

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
        }
