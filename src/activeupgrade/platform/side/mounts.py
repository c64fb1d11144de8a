"""The mounts this process sees (``/proc/self/mountinfo``), as the tree the kernel keeps.

The Upgrade Side's view is assembled from what is visible here: for every path, the mount
on top (an over-mount hides what it covers, and the mounts inside what it covers). Paths
are as this process sees them, so a daemon in a chroot sees its own root's mounts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo."""

    id: int
    parent: int
    device: str
    """major:minor of the filesystem."""
    root: str
    """The folder of the filesystem shown at the mount point."""
    point: str
    """Where it is mounted (as this process sees it)."""
    fstype: str
    source: str


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 1 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse(text: str) -> list[Mount]:
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        sep = fields.index("-")
        found.append(Mount(
            id=int(fields[0]), parent=int(fields[1]), device=fields[2],
            root=unescape(fields[3]), point=os.path.normpath(unescape(fields[4])),
            fstype=fields[sep + 1], source=unescape(fields[sep + 2]),
        ))
    return found


def current() -> list[Mount]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        return parse(fh.read())


def visible(mounts: list[Mount]) -> list[Mount]:
    """The mounts a path lookup reaches, parents before children: at each mount point
    only the top of a stack, and nothing that an over-mount covers."""
    by_id = {m.id: m for m in mounts}
    children: dict[int, list[Mount]] = {}
    for m in mounts:
        children.setdefault(m.parent, []).append(m)

    def top(m: Mount) -> Mount:
        while True:
            over = [c for c in children.get(m.id, []) if c.point == m.point]
            if not over:
                return m
            m = over[-1]

    out: list[Mount] = []
    seen: set[int] = set()

    def visit(m: Mount) -> None:
        m = top(m)
        if m.id in seen:
            return
        seen.add(m.id)
        out.append(m)
        kids = sorted((c for c in children.get(m.id, []) if c.point != m.point),
                      key=lambda c: c.point)
        for c in kids:
            visit(c)

    # Roots: mounts whose parent this process cannot see (the root of the namespace, or in
    # a chroot the mounts of the filesystem that holds the chroot).
    for m in sorted((m for m in mounts if m.parent not in by_id or m.parent == m.id),
                    key=lambda m: (m.point.count("/"), m.point)):
        visit(m)
    # Keep the deepest mount where two roots claim one point (a chroot's own binds).
    last: dict[str, Mount] = {}
    for m in out:
        last[m.point] = m
    return [m for m in out if last[m.point] is m]


def under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or inside it."""
    return prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/")


def mounted_at(path: str) -> bool:
    """Something is mounted exactly at ``path`` (in this mount namespace)."""
    target = os.path.realpath(path)
    return any(m.point == target for m in current())
