"""The demo's load client: threads that write orders and read them back, all run long.

Every request opens its own connection (as many real clients do), so a switchover can only
show as a wait or as a failure, never be hidden by a pooled connection. Each failure is kept
with its reason; every order written is remembered for the final verification.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

REQUEST_TIMEOUT = 60.0
"""Seconds a client waits for one answer before counting it failed."""


@dataclass(frozen=True)
class Order:
    """An order the client wrote and the shop acknowledged."""

    id: str
    item: str
    qty: int
    client_ref: str
    phase: str
    """What the session was doing when it was written (idle, split, merge, ...)."""


@dataclass
class LoadStats:
    """What the clients saw."""

    sent: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    longest_by_phase: dict[str, float] = field(default_factory=dict)
    """Longest wait a client saw while the session was in each phase (seconds)."""

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0

        return {
            "requests_sent": self.sent,
            "requests_failed": self.failed,
            "mean_ms": (sum(lat) / len(lat) * 1000) if lat else 0.0,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "longest_wait_ms": (lat[-1] * 1000) if lat else 0.0,
            "served_by_version": dict(self.versions),
            "longest_wait_ms_by_phase": {
                k: round(v * 1000, 2) for k, v in self.longest_by_phase.items()
            },
            "failures": self.failures[:20],
        }


class ShopClient:
    """One-shot HTTP requests to the shop."""

    def __init__(self, host: str, port: int, timeout: float = REQUEST_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def request(self, method: str, path: str,
                body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], str]:
        """(status, JSON body, X-Shop-Version); raises OSError/HTTPException on failure."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            parsed: dict[str, Any] = json.loads(payload) if payload else {}
            return resp.status, parsed, resp.getheader("X-Shop-Version", "")
        finally:
            conn.close()

    def version(self) -> str:
        status, body, _ = self.request("GET", "/version")
        if status != 200:
            raise OSError(f"GET /version answered {status}")
        return str(body["version"])


class LoadClient:
    """``threads`` workers, each: POST an order, GET it back, compare, pause, repeat."""

    def __init__(self, host: str, port: int, threads: int = 4, pause: float = 0.01) -> None:
        self.shop = ShopClient(host, port)
        self.threads = threads
        self.pause = pause
        self.phase = "idle"
        self.stats = LoadStats()
        self.orders: list[Order] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.threads):
            t = threading.Thread(target=self._work, args=(n,), name=f"load-{n}", daemon=True)
            t.start()
            self._workers.append(t)

    def stop(self) -> LoadStats:
        self._stop.set()
        for t in self._workers:
            t.join(REQUEST_TIMEOUT + 5)
        return self.stats

    def _timed(self, method: str, path: str,
               body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]] | None:
        started = time.monotonic()
        try:
            status, payload, version = self.shop.request(method, path, body)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._count(time.monotonic() - started, f"{method} {path}: {exc!r}", "")
            return None
        problem = "" if status < 300 else f"{method} {path}: HTTP {status} {payload}"
        self._count(time.monotonic() - started, problem, version)
        return (status, payload) if not problem else None

    def _count(self, seconds: float, problem: str, version: str) -> None:
        with self._lock:
            self.stats.sent += 1
            self.stats.latencies.append(seconds)
            longest = self.stats.longest_by_phase
            longest[self.phase] = max(longest.get(self.phase, 0.0), seconds)
            if problem:
                self.stats.failed += 1
                self.stats.failures.append(problem)
            if version:
                self.stats.versions[version] = self.stats.versions.get(version, 0) + 1

    def _work(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            ref = f"w{worker}-{n}"
            item, qty = f"widget-{n % 7}", 1 + n % 5
            body: dict[str, Any] = {"item": item, "qty": qty, "client_ref": ref}
            phase = self.phase
            created = self._timed("POST", "/orders", body)
            if created is not None:
                order = Order(str(created[1]["id"]), item, qty, ref, phase)
                with self._lock:
                    self.orders.append(order)
                read = self._timed("GET", f"/orders/{order.id}")
                if read is not None and read[1].get("client_ref") != ref:
                    self._count(0.0, f"GET /orders/{order.id}: wrong order {read[1]}", "")
            self._stop.wait(self.pause)


def verify_orders(shop: ShopClient, orders: list[Order]) -> dict[str, Any]:
    """Read every order back; returns counts and the ids that are missing or altered."""
    lost: list[str] = []
    for order in orders:
        try:
            status, body, _ = shop.request("GET", f"/orders/{order.id}")
        except (OSError, http.client.HTTPException, ValueError):
            status, body = 0, {}
        if status != 200 or (body.get("item"), body.get("qty"), body.get("client_ref")) != (
            order.item, order.qty, order.client_ref
        ):
            lost.append(order.id)
    by_phase: dict[str, int] = {}
    for order in orders:
        by_phase[order.phase] = by_phase.get(order.phase, 0) + 1
    return {
        "orders_written": len(orders),
        "orders_verified": len(orders) - len(lost),
        "orders_lost": len(lost),
        "lost_ids": lost[:20],
        "written_by_phase": by_phase,
    }
