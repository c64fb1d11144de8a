"""The mounts this process sees (``/proc/self/mountinfo``), as the tree the kernel keeps.

The Upgrade Side's view is assembled from what is visible here: for every path, the mount
on top (an over-mount hides what it covers, and the mounts inside what it covers). Paths
are as this process sees them, so a daemon in a chroot sees its own root's mounts.
"""

from __future__ import annotations

from activeupgrade.platform.volumes.mounts import Mount, current, mounted, parse, unescape

__all__ = ["Mount", "current", "mounted_at", "parse", "under", "unescape", "visible"]


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


mounted_at = mounted
"""Something is mounted exactly at ``path`` (in this mount namespace)."""
