"""The one-line progress display of a running request or operation (CLI, demo)."""

from __future__ import annotations

import sys
from typing import TextIO

from activeupgrade.engine.view import StatusView

BAR_WIDTH = 20


def progress_line(status: StatusView) -> str:
    """``ExecuteMerge [3/9] services.stop:shop [####......] 40.0% stopping``."""
    p = status.progress
    req = p.request or status.request.value
    step = p.step or status.step
    if not step:
        what = status.action.value if status.action else req
        return f"{what}: starting ({status.upgrade_state})"
    pos = f"{p.index + 1}/{p.total or '?'}"
    pct = max(0.0, min(100.0, p.percent))
    filled = int(BAR_WIDTH * pct / 100)
    phase = f" › {status.sub_request}" if status.sub_request else ""
    return (f"{req}{phase} [{pos}] {step} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
            f"{pct:5.1f}% {p.text}")


class ProgressLine:
    """Redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = ""

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
        self.show(progress_line(status))

    def done(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()
