"""The free space a resync leaves to the applications.

A resync writes onto the filesystem of the replicas, which is often the applications' own
(``/usr``, ``/var``): copying into its last free bytes would make their writes fail with
ENOSPC. A resync therefore stops, as a DiskFullError, before the free space would fall
below a reserve: before it starts when what it must copy does not fit (plain storage; a
reflink copy takes no space), and while it runs when something else filled the disk.
Stopped, it keeps what it copied: the next resync (Retry) goes on from there.
"""

from __future__ import annotations

import os

from activeupgrade.errors import DiskFullError
from activeupgrade.units import human_bytes

RESERVE_SHARE = 0.02
"""The reserve: 2 % of the filesystem …"""
RESERVE_FLOOR = 64 * 1024 * 1024
"""… but at least 64 MiB …"""
RESERVE_CEILING_SHARE = 0.10
"""… and at most 10 % of it (small filesystems)."""


def reserve_of(total: int) -> int:
    """Bytes left free for the applications on a filesystem of ``total`` bytes."""
    return int(min(max(total * RESERVE_SHARE, RESERVE_FLOOR), total * RESERVE_CEILING_SHARE))


def free_and_reserve(path: str) -> tuple[int, int]:
    """(bytes free to unprivileged writers, the reserve) on the filesystem of ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, reserve_of(st.f_blocks * st.f_frsize)


def _stop(path: str, free: int, reserve: int, needed: int) -> DiskFullError:
    what = (f"the resync into {path} needs {human_bytes(needed)} and "
            if needed else f"the resync into {path} stopped: ")
    return DiskFullError(
        f"{what}{human_bytes(free)} is free; it keeps {human_bytes(reserve)} free for the "
        "applications",
        hint="Free space on that filesystem (or grow it), then `au retry`: what was copied "
             "is kept.",
        details={"path": path, "free": free, "reserve": reserve, "needed": needed})


def ensure_room(path: str, needed: int) -> None:
    """Before copying ``needed`` bytes into ``path``: DiskFullError when they would eat
    into the reserve."""
    free, reserve = free_and_reserve(path)
    if free - needed < reserve:
        raise _stop(path, free, reserve, needed)


def check(path: str) -> None:
    """While copying: DiskFullError once the free space is below the reserve."""
    free, reserve = free_and_reserve(path)
    if free < reserve:
        raise _stop(path, free, reserve, 0)
