"""Small output helpers shared by the commands (JSON, tables, progress)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from activeupgrade.api.client import Client


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


class Progress:
    """A one-line progress display on stderr (redrawn on a terminal, appended otherwise)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = ""

    def show(self, text: str) -> None:
        if text == self.last:
            return
        self.last = text
        if self.tty:
            sys.stderr.write("\r\033[K" + text[:160])
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")
            sys.stderr.flush()


def progress_line(status: dict[str, Any]) -> str:
    p = status.get("progress") or {}
    req = p.get("request") or status.get("request", "")
    step = p.get("step") or status.get("step", "")
    if not step:
        return f"{status.get('action') or req}: starting ({status['upgrade_state']})"
    pos = f"{int(p.get('index', 0)) + 1}/{p.get('total', '?')}"
    pct = p.get("percent") or 0
    bar_w = 20
    filled = int(bar_w * min(100.0, float(pct)) / 100)
    text = p.get("text") or ""
    return f"{req} [{pos}] {step} [{'#' * filled}{'.' * (bar_w - filled)}] {pct:5.1f}% {text}"


def follow_until_done(client: Client, action: str, *, quiet: bool = False) -> dict[str, Any]:
    """Show progress until ``action`` has finished (Ready or Broken)."""
    bar = Progress()
    try:
        while True:
            status: dict[str, Any] = client.get("/status")
            busy = status["operational_state"] == "Busy"
            if not busy and status.get("action") == action:
                return status
            if not busy and action != "abort":
                return status
            if not quiet:
                bar.show(progress_line(status))
            time.sleep(0.15)
    finally:
        bar.done()
