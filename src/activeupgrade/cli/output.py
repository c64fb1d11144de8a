"""Small output helpers shared by the commands (JSON, tables, progress)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from activeupgrade.cli.progress import progress

__all__ = ["print_json", "progress", "table"]


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)




COLOURS = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "bold": "1", "dim": "2"}
STATE_COLOURS = {"Ready": "green", "Busy": "yellow", "Broken": "red"}
"""The colour of each operational state on a terminal."""


def colour_on(stream: TextIO | None = None) -> bool:
    """Colours only on a terminal, and never when NO_COLOR is set (https://no-color.org)
    or TERM is dumb."""
    out = stream or sys.stdout
    if os.environ.get("NO_COLOR", "") or os.environ.get("TERM") == "dumb":
        return False
    return out.isatty()


def paint(text: str, colour: str, stream: TextIO | None = None) -> str:
    """``text`` in ``colour`` when ``colour_on(stream)``."""
    code = COLOURS.get(colour)
    if not code or not colour_on(stream):
        return text
    return f"\033[{code}m{text}\033[0m"
