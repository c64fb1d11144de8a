"""What the Upgrade Side wrote outside the managed volumes: listed, never kept.

Read by the daemon from the side's scratch while it exists: the upper folder of every
copy-on-write layer (``root``, ``outside``) tells what was created, changed or deleted
there, and each data volume's scratch what was written in place of the live data. The
side's own /run, /tmp and /var/tmp are counted, not listed (like a reboot, they start over).
Shown in the activity log at PrepareMerge and ExecuteMerge, by ``au plan`` and by
``au side writes`` (GET /side/writes).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from activeupgrade.instance import Instance
from activeupgrade.platform.side import namespace
from activeupgrade.platform.side.layers import Layer, LayerKind, View

LISTED = 500
"""Paths listed in full; the rest are counted."""
OPAQUE = "trusted.overlay.opaque"


class Change(StrEnum):
    """What happened to a path outside the managed volumes."""

    CREATED = "created"
    """A new file, folder or link."""
    MODIFIED = "modified"
    """An existing file changed (content, mode or owner)."""
    DELETED = "deleted"
    """An existing path removed."""
    REPLACED = "replaced"
    """An existing folder removed and made again (its old content hidden)."""


@dataclass
class Writes:
    """The writes of the Upgrade Side outside its system volumes."""

    outside: list[dict[str, Any]] = field(default_factory=list)
    """Paths written outside the volumes (copy-on-write layers): never kept."""
    data: list[dict[str, Any]] = field(default_factory=list)
    """Paths written in a data volume's place: scratch, never reaching live data."""
    counts: dict[str, int] = field(default_factory=dict)
    """Totals: outside, data, temporary (/run, /tmp, /var/tmp)."""
    exists: bool = False
    """An isolated Upgrade Side exists (else nothing to list)."""

    def to_dict(self) -> dict[str, Any]:
        return {"exists": self.exists, "outside": self.outside, "data": self.data,
                "counts": self.counts, "truncated": self.counts.get("outside", 0) > len(
                    self.outside) or self.counts.get("data", 0) > len(self.data)}

    def summary(self) -> str:
        if not self.exists:
            return "no isolated Upgrade Side: nothing written outside the volumes"
        n, d = self.counts.get("outside", 0), self.counts.get("data", 0)
        text = (f"{n} path(s) written outside the managed volumes, not kept"
                + (f"; {d} in data volumes' scratch, not kept" if d else ""))
        if self.outside:
            shown = ", ".join(f"{w['path']} ({w['change']})" for w in self.outside[:8])
            text += f": {shown}" + (" …" if n > 8 else "")
        return text


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk_upper(upper: str, shown_at: str, skip: set[str], found: list[dict[str, Any]],
                base: str) -> None:
    """Compare the upper folder of a layer shown at ``shown_at`` with the host's paths."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(upper, rel)), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            sub = os.path.join(rel, e.name)
            path = os.path.normpath(os.path.join(shown_at, sub))
            if path in skip:
                continue
            st = e.stat(follow_symlinks=False)
            lower = base + path if base else path
            in_lower = os.path.lexists(lower)
            if _is_whiteout(st):
                found.append({"path": path, "change": Change.DELETED.value, "bytes": 0})
                continue
            if stat.S_ISDIR(st.st_mode):
                if not in_lower:
                    found.append({"path": path, "change": Change.CREATED.value, "bytes": 0})
                elif _opaque(e.path):
                    found.append({"path": path, "change": Change.REPLACED.value, "bytes": 0})
                stack.append(sub)
                continue
            change = Change.MODIFIED if in_lower else Change.CREATED
            found.append({"path": path, "change": change.value, "bytes": st.st_size})


def _walk_data(folder: str, shown_at: str, found: list[dict[str, Any]]) -> None:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            full = os.path.join(dirpath, name)
            try:
                size = os.lstat(full).st_size if name in filenames else 0
            except OSError:
                continue
            found.append({"path": os.path.join(shown_at, os.path.relpath(full, folder)),
                          "change": Change.CREATED.value, "bytes": size})


def _count(folder: str) -> int:
    return sum(len(d) + len(f) for _, d, f in os.walk(folder))


def of_view(plan: View, scratch: str, base: str = "", skip: set[str] | None = None) -> Writes:
    out = Writes(exists=True)
    outside: list[dict[str, Any]] = []
    data: list[dict[str, Any]] = []
    layers: list[Layer] = plan.of(LayerKind.ROOT, LayerKind.OUTSIDE)
    for layer in layers:
        upper = os.path.join(scratch, layer.scratch)
        if layer.writable and os.path.isdir(upper):
            _walk_upper(upper, layer.path, skip or set(), outside, base)
    for layer in plan.of(LayerKind.DATA):
        _walk_data(os.path.join(scratch, layer.scratch), layer.path, data)
    temporary = sum(_count(os.path.join(scratch, la.scratch)) for la in plan.of(LayerKind.FRESH))
    outside.sort(key=lambda w: str(w["path"]))
    out.counts = {"outside": len(outside), "data": len(data), "temporary": temporary}
    out.outside, out.data = outside[:LISTED], data[:LISTED]
    return out


def written(instance: Instance) -> Writes:
    """The writes of the instance's Upgrade Side as they are now."""
    rec = namespace.read(instance)
    scratch = rec.get("scratch", "")
    if rec.get("mode") != namespace.NAMESPACES or not rec.get("view") or not scratch \
            or not os.path.isdir(scratch):
        return Writes()
    plan = View.from_list(rec["view"])
    return of_view(plan, scratch, skip=set(rec.get("created", [])))
