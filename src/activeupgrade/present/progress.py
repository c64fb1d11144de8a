"""The words of progress, shared by the CLI, the demo and both consoles: where a running
request or operation is, how far (the request's percent and the step's), what the step
counted (bytes and files), its rate and the time left.

The numbers come from the engine's progress document (``engine/progress.py``), which keeps
them honest: they never go back and never read 100 % before the end. ``ProgressLine`` is
the plain display (one line redrawn on a terminal, a line per real change otherwise);
the CLI's rich display (``cli/progress.py``) draws the same facts as bars.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from activeupgrade.engine.view import Progress, StatusView
from activeupgrade.units import human_bytes

BAR_WIDTH = 20
PLAIN_EVERY = 5.0
"""Seconds between two lines of the plain display off a terminal when only the counters
moved (a new step, or a whole percent more, prints at once)."""


def duration_text(seconds: float) -> str:
    """``75`` → ``"1m15s"``; ``3725`` → ``"1h02m"``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def counts_text(p: Progress) -> str:
    """``1.2 GiB of 3.0 GiB, 1200 of 5000 files, 55.0 MiB/s, 12s left``; "" when the step
    counts nothing."""
    parts: list[str] = []
    if p.bytes_total or p.bytes_done:
        parts.append(human_bytes(p.bytes_done)
                     + (f" of {human_bytes(p.bytes_total)}" if p.bytes_total else ""))
    if p.files_total or p.files_done:
        parts.append(f"{p.files_done}" + (f" of {p.files_total}" if p.files_total else "")
                     + " files")
    if p.bytes_per_second:
        parts.append(f"{human_bytes(p.bytes_per_second)}/s")
    if p.eta is not None:
        parts.append(f"{duration_text(p.eta)} left")
    return ", ".join(parts)


def where_text(status: StatusView) -> str:
    """``ExecuteMerge › Stop step 3/9: services.stop:shop``."""
    p = status.progress
    req = p.request or status.request.value
    phase = f" › {status.sub_request}" if status.sub_request else ""
    return f"{req}{phase} step {p.index + 1}/{p.total or '?'}: {p.step or status.step}"


def overall(status: StatusView) -> float:
    """The request's percent (0 when nothing runs)."""
    p = status.progress
    if not p.step:
        return 0.0
    return max(0.0, min(100.0, p.overall))


def bar(percent: float, width: int = BAR_WIDTH) -> str:
    filled = int(width * max(0.0, min(100.0, percent)) / 100)
    return "#" * filled + "." * (width - filled)


def progress_line(status: StatusView) -> str:
    """``ExecuteMerge step 3/9: services.stop:shop [####....] 25.0% · step 40% · 1.2 GiB
    of 3.0 GiB, 55.0 MiB/s, 12s left · stopping shop``."""
    p = status.progress
    if not p.step:
        what = status.action.value if status.action else status.request.value
        return f"{what}: starting ({status.upgrade_state})"
    pct = overall(status)
    line = f"{where_text(status)} [{bar(pct)}] {pct:5.1f}%"
    if p.percent:
        line += f" · step {p.percent:.0f}%"
    counted = counts_text(p)
    if counted:
        line += f" · {counted}"
    if p.text:
        line += f" · {p.text}"
    return line


def console_progress(status: Mapping[str, Any]) -> dict[str, Any]:
    """What the consoles draw: the request's percent, where it is, what the step counts."""
    view = StatusView.from_dict(dict(status))
    if not view.busy or not view.progress.step:
        return {"percent": 0.0, "where": "", "detail": "", "step_percent": 0.0}
    p = view.progress
    detail = " · ".join(x for x in (counts_text(p), p.text) if x)
    return {"percent": round(overall(view), 1), "where": where_text(view), "detail": detail,
            "step_percent": round(p.percent, 1)}


class ProgressLine:
    """Redrawn in place on a terminal; off a terminal a line per real change (a new step,
    a whole percent more, or every ``PLAIN_EVERY`` seconds)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = ""
        self._key: tuple[str, int] = ("", -1)
        self._at = 0.0

    def show(self, text: str) -> None:
        if text == self.last:
            return
        self.last = text
        if self.tty:
            self.stream.write("\r\033[K" + text[:160])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def status(self, status: StatusView) -> None:
        """Show where ``status`` is (the ``on_progress`` of the API client)."""
        if not self.tty:
            key = (where_text(status) if status.progress.step else "", int(overall(status)))
            now = time.monotonic()
            if key == self._key and now - self._at < PLAIN_EVERY:
                return
            self._key, self._at = key, now
        self.show(progress_line(status))

    def done(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()
