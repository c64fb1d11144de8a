"""What the CLI and both consoles show of the merge's safety nets, from the status
document's facts: the confirmation window (with the time left) and the data checkpoints
(with the writes made since, and where an abort saved them aside).

The web console's ``static/console.js`` (``rollbackLines``) words them the same way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from activeupgrade.units import human_bytes, human_left

SHOWN = 20
"""Paths of the writes since a checkpoint listed per volume (``au volume show`` lists
more)."""


def confirm_line(status: Mapping[str, Any], now: float | None = None) -> str:
    """The confirmation window in one line, the time left counted to ``now`` ("" when the
    session has none)."""
    window = (status.get("facts") or {}).get("confirm_window")
    if not isinstance(window, Mapping):
        return ""
    if window.get("outcome") == "open" and window.get("deadline"):
        remaining = float(window["deadline"]) - (time.time() if now is None else now)
        return (f"confirm by {window.get('deadline_time')} ({human_left(remaining)} left), or the "
                "merge is aborted automatically")
    return str(window.get("text", ""))


def checkpoint_lines(status: Mapping[str, Any], shown: int = SHOWN) -> list[str]:
    """One line per checkpoint, each followed by the writes since (indented), then the
    folders abort saved writes into."""
    facts = status.get("facts") or {}
    lines: list[str] = []
    for ck in facts.get("checkpoints") or []:
        head = f"{ck.get('path')}: checkpoint of {ck.get('time')} (replica {ck.get('replica')}"
        head += ", reflink clones)" if ck.get("storage") in ("reflink", "snapshot") else ")"
        phase = ck.get("phase")
        writes = ck.get("writes") or {}
        if phase == "frozen":
            lines.append(
                f"{head}: {writes.get('files', 0)} file(s) written since — "
                f"{writes.get('created', 0)} created, {writes.get('changed', 0)} changed, "
                f"{writes.get('deleted', 0)} deleted "
                f"({human_bytes(float(writes.get('bytes', 0)))})")
            listed = list(writes.get("lines") or [])
            lines += [f"  {line}" for line in listed[:shown]]
            more = int(writes.get("files", 0)) - min(len(listed), shown)
            if more > 0:
                lines.append(f"  … and {more} more (au volume show {ck.get('volume')})")
        elif phase in ("saved", "restored"):
            lines.append(f"{head}: data returned to the checkpoint; the writes since are in "
                         f"{ck.get('saved')}" if phase == "restored" else
                         f"{head}: writes since saved in {ck.get('saved')}")
        elif phase == "released":
            lines.append(f"{head}: released, the live data stays")
    for saved in facts.get("saved_writes") or []:
        lines.append(f"Writes saved aside by an abort: {saved.get('folder')} "
                     f"({saved.get('files', 0)} file(s), "
                     f"{human_bytes(float(saved.get('bytes', 0)))})")
    return lines
