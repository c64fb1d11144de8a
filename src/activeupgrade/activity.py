"""The activity log (SPEC §10): persistent, tree-shaped, with severities and event ids.

Entries form a tree through ``parent``: request → step → action → output. Each entry has
time, session, side, upgrade state, request, a stable event id, a message and details.
Entries are stored in the instance database and published on the bus as they are written.
Old sessions are rotated out to compressed JSON-lines archives under ``logs/``.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from activeupgrade.bus import Bus, EventKind
from activeupgrade.model.states import Severity
from activeupgrade.store.db import Store
from activeupgrade.units import iso_time

ROTATE_AT = 200_000
"""Entries kept in the database; beyond this the oldest are archived."""


@dataclass(frozen=True)
class Entry:
    id: int
    parent: int | None
    at: float
    session: str
    side: str
    state: str
    request: str
    severity: Severity
    event: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = self.severity.value
        d["time"] = iso_time(self.at)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        """The entry an API document describes (``to_dict``'s inverse)."""
        return cls(
            d["id"], d["parent"], d["at"], d["session"], d["side"], d["state"], d["request"],
            Severity(d["severity"]), d["event"], d["message"], d.get("details") or {},
        )

    def to_text(self, depth: int = 0) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        where = "/".join(x for x in (self.side, self.state, self.request) if x)
        return (
            f"{stamp} {self.severity.value.upper():8} {'  ' * depth}{self.message}"
            f"  [{self.event}{' ' + where if where else ''}]"
        )


@dataclass
class Context:
    """Who is writing: filled by the engine so every entry carries session, side, state."""

    session: str = ""
    side: str = ""
    state: str = ""
    request: str = ""


class ActivityLog:
    def __init__(self, store: Store, bus: Bus, archive_dir: Path) -> None:
        self.store = store
        self.bus = bus
        self.archive_dir = archive_dir

    def write(
        self,
        event: str,
        message: str,
        *,
        severity: Severity = Severity.INFO,
        parent: int | None = None,
        ctx: Context | None = None,
        details: dict[str, Any] | None = None,
        side: str | None = None,
    ) -> int:
        """Append an entry and publish it; returns its id (the parent of its children)."""
        c = ctx or Context()
        at = time.time()
        det = details or {}
        entry_side = side if side is not None else c.side
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT INTO log (parent, at, session, side, state, request, severity, event,"
                " message, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    parent, at, c.session, entry_side, c.state, c.request, severity.value, event,
                    message, json.dumps(det, default=str),
                ),
            )
            entry_id = int(cur.lastrowid or 0)
        entry = Entry(
            entry_id, parent, at, c.session, entry_side, c.state, c.request, severity, event,
            message, det,
        )
        self.bus.publish(EventKind.LOG, entry.to_dict())
        return entry_id

    def update_details(self, entry_id: int, details: dict[str, Any]) -> None:
        """Merge ``details`` into an entry (e.g. an action's exit value when it ends)."""
        rows = self.store.query("SELECT details FROM log WHERE id=?", (entry_id,))
        if not rows:
            return
        merged = json.loads(rows[0]["details"])
        merged.update(details)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE log SET details=? WHERE id=?", (json.dumps(merged, default=str), entry_id)
            )

    def entries(
        self,
        *,
        after: int = 0,
        session: str | None = None,
        min_severity: Severity | None = None,
        request: str | None = None,
        side: str | None = None,
        event_prefix: str | None = None,
        limit: int = 10_000,
        root: int | None = None,
        newest: bool = False,
        since: float | None = None,
    ) -> list[Entry]:
        """Entries matching the filters, oldest first (with ``newest``: the last ``limit``
        of them, still oldest first; ``since``: written at or after that time)."""
        sql = "SELECT * FROM log WHERE id > ?"
        params: list[Any] = [after]
        if since is not None:
            sql += " AND at >= ?"
            params.append(since)
        if session:
            sql += " AND session = ?"
            params.append(session)
        if request:
            sql += " AND request = ?"
            params.append(request)
        if side:
            sql += " AND side = ?"
            params.append(side)
        if event_prefix:
            sql += " AND event LIKE ?"
            params.append(event_prefix.replace("%", "") + "%")
        if min_severity is not None:
            names = [s.value for s in Severity if s.rank >= min_severity.rank]
            sql += f" AND severity IN ({','.join('?' * len(names))})"
            params.extend(names)
        sql += f" ORDER BY id {'DESC' if newest else ''} LIMIT ?"
        params.append(limit)
        found = [self._entry(r) for r in self.store.query(sql, tuple(params))]
        if newest:
            found.reverse()
        if root is not None:
            found = subtree(found, root)
        return found

    def get(self, entry_id: int) -> Entry | None:
        rows = self.store.query("SELECT * FROM log WHERE id=?", (entry_id,))
        return self._entry(rows[0]) if rows else None

    def children(self, entry_id: int) -> list[Entry]:
        rows = self.store.query("SELECT * FROM log WHERE parent=? ORDER BY id", (entry_id,))
        return [self._entry(r) for r in rows]

    @staticmethod
    def _entry(r: Any) -> Entry:
        return Entry(
            int(r["id"]), r["parent"], float(r["at"]), r["session"], r["side"], r["state"],
            r["request"], Severity(r["severity"]), r["event"], r["message"],
            json.loads(r["details"]),
        )

    def rotate(self, keep: int = ROTATE_AT) -> Path | None:
        """Move the oldest entries beyond ``keep`` to a gzip JSON-lines archive."""
        rows = self.store.query("SELECT COUNT(*) AS n, MAX(id) AS top FROM log")
        count = int(rows[0]["n"] or 0)
        if count <= keep:
            return None
        cutoff = int(rows[0]["top"]) - keep
        old = self.entries(limit=count, after=0)
        old = [e for e in old if e.id <= cutoff]
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        path = self.archive_dir / f"activity-{time.strftime('%Y%m%d-%H%M%S')}-{cutoff}.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            for e in old:
                fh.write(json.dumps(e.to_dict()) + "\n")
        with self.store.transaction() as db:
            db.execute("DELETE FROM log WHERE id <= ?", (cutoff,))
        return path


def depth_map(entries: Iterable[Entry]) -> dict[int, int]:
    """Depth of each entry in its tree (entries whose parent is absent are roots)."""
    by_id = {e.id: e for e in entries}
    depth: dict[int, int] = {}
    for e in by_id.values():
        d, p = 0, e.parent
        while p is not None and p in by_id and d < 32:
            d += 1
            p = by_id[p].parent
        depth[e.id] = d
    return depth


def subtree(entries: list[Entry], root: int) -> list[Entry]:
    keep = {root}
    out = []
    for e in entries:
        if e.id == root or (e.parent is not None and e.parent in keep):
            keep.add(e.id)
            out.append(e)
    return out


def render_text(entries: list[Entry]) -> str:
    depth = depth_map(entries)
    return "\n".join(e.to_text(depth[e.id]) for e in entries) + ("\n" if entries else "")


def render_json(entries: list[Entry]) -> str:
    return json.dumps([e.to_dict() for e in entries], indent=2) + "\n"
