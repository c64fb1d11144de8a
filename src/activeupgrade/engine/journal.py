"""The step journal: every step boundary of every request run, written durably."""

from __future__ import annotations

import time
from dataclasses import dataclass

from activeupgrade.store.db import Store


@dataclass(frozen=True)
class Mark:
    session: str
    run: str
    request: str
    step: str
    phase: str
    attempt: int
    at: float
    detail: str


class Journal:
    def __init__(self, store: Store) -> None:
        self.store = store

    def mark(
        self, session: str, run: str, request: str, step: str, phase: str, attempt: int,
        detail: str = "",
    ) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO journal (session, run, request, step, phase, attempt, at, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (session, run, request, step, phase, attempt, time.time(), detail),
            )

    def completed(self, run: str) -> set[str]:
        """Steps of ``run`` that ended successfully (skipped when the run resumes)."""
        rows = self.store.query(
            "SELECT DISTINCT step FROM journal WHERE run=? AND phase='end'", (run,)
        )
        return {r["step"] for r in rows}

    def open_step(self, run: str) -> str:
        """The step of ``run`` that began last without ending or failing ("" if none)."""
        rows = self.store.query(
            "SELECT step, phase FROM journal WHERE run=? ORDER BY id DESC LIMIT 1", (run,)
        )
        if rows and rows[0]["phase"] == "begin":
            return str(rows[0]["step"])
        return ""

    def marks(self, session: str | None = None) -> list[Mark]:
        sql = "SELECT * FROM journal"
        params: tuple[str, ...] = ()
        if session is not None:
            sql += " WHERE session=?"
            params = (session,)
        return [
            Mark(r["session"], r["run"], r["request"], r["step"], r["phase"], r["attempt"],
                 r["at"], r["detail"])
            for r in self.store.query(sql + " ORDER BY id", params)
        ]
