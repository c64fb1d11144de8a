"""Where the running request or operation is: the one progress document the engine
publishes (``progress`` events, the status's ``progress``).

Honest by construction: a step's own percent never goes back and never reads 100 before
the step ended (a step that reports nothing still moves the request's percent step by
step); the request's ``overall`` percent is the ended steps plus the running step's part,
and never goes back either. Steps may report bytes and files done and to do; the rate and
the estimated time left are computed here, once, for every client.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

RUNNING_CAP = 99.9
"""The highest percent a step (or a request) shows while it still runs."""

COUNTERS = ("bytes_done", "bytes_total", "files_done", "files_total")
"""What a step may count (``StepContext.progress`` keywords)."""


@dataclass
class _Running:
    request: str
    step: str
    index: int
    total: int
    text: str
    started: float
    """time.time() when the step began."""
    clock: float
    """time.monotonic() when the step began."""
    percent: float = 0.0
    floor: float = 0.0
    """The request's percent already shown (never shown lower again)."""


class ProgressTracker:
    """Owned by the engine; ``doc()`` is what clients get."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: _Running | None = None
        self._counts: dict[str, int] = {}

    def begin(self, request: str, step: str, index: int, total: int, text: str) -> None:
        """A step starts: the request's percent is at least the steps already ended."""
        with self._lock:
            floor = self._overall() if self._now is not None and (
                self._now.request == request) else 0.0
            self._now = _Running(request, step, index, max(total, index + 1), text,
                                 time.time(), time.monotonic(), floor=floor)
            self._counts = {}

    def report(self, percent: float, text: str, counts: dict[str, int] | None = None) -> None:
        """The running step says how far it is (0–100) and what it does."""
        with self._lock:
            now = self._now
            if now is None:
                return
            pct = min(RUNNING_CAP, max(0.0, float(percent)))
            now.percent = max(now.percent, pct)
            now.text = text
            for key, value in (counts or {}).items():
                if key in COUNTERS:
                    self._counts[key] = max(0, int(value))

    def clear(self) -> None:
        with self._lock:
            self._now = None
            self._counts = {}

    def _overall(self) -> float:
        now = self._now
        if now is None:
            return 0.0
        raw = (now.index + now.percent / 100.0) / now.total * 100.0
        now.floor = max(now.floor, min(RUNNING_CAP, raw))
        return now.floor

    def doc(self) -> dict[str, Any]:
        """The progress document ({} when nothing runs)."""
        with self._lock:
            now = self._now
            if now is None:
                return {}
            elapsed = max(0.0, time.monotonic() - now.clock)
            d: dict[str, Any] = {
                "request": now.request, "step": now.step, "index": now.index,
                "total": now.total, "percent": round(now.percent, 1), "text": now.text,
                "overall": round(self._overall(), 1), "started": now.started,
                "elapsed": round(elapsed, 1), **self._counts,
            }
            done = self._counts.get("bytes_done", 0)
            if done and elapsed > 0:
                d["bytes_per_second"] = round(done / elapsed)
            if self._counts.get("files_done") and elapsed > 0:
                d["files_per_second"] = round(self._counts["files_done"] / elapsed, 1)
            if 0.0 < now.percent < RUNNING_CAP and elapsed >= 1.0:
                d["eta"] = round(elapsed * (100.0 - now.percent) / now.percent, 1)
            return d
