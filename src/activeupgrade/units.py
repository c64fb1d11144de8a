"""Human-readable quantities shared by the log messages, the CLI and the consoles."""

from __future__ import annotations

from datetime import datetime


def human_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``; whole bytes below 1 KiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_left(seconds: float) -> str:
    """A time left, rounded up: ``9m 58s``, ``1h 2m``, ``4s``."""
    s = max(0, int(seconds + 0.999))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m {s % 60}s"
    return f"{s}s"


def iso_time(at: float) -> str:
    """``at`` (seconds since the epoch) as ISO 8601 local time with its offset:
    ``2025-03-01T14:05:09.123+01:00``."""
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="milliseconds")
