"""The durable store: SQLite in WAL mode with ``synchronous=FULL``, a schema version and
ordered migrations.

Tables:
- ``meta``: schema version and instance facts;
- ``status``: the one engine status document (JSON, see ``engine/status.py``);
- ``journal``: every step boundary (begin/end/fail) of every request run;
- ``log``: the activity log (tree-shaped through ``parent``);
- ``docs``: JSON documents of the platform parts, by (namespace, key);
- ``sessions``: one row per session.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from activeupgrade.errors import DiskFullError, FilesystemError, StoreError

SCHEMA_VERSION = 2

Migration = Callable[[sqlite3.Connection], None]


def _script(db: sqlite3.Connection, script: str) -> None:
    """Run the statements of ``script`` inside the caller's transaction.

    (``executescript`` would commit first, breaking the all-or-nothing migration.)
    """
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE status (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL);
        CREATE TABLE journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session TEXT NOT NULL,
            run TEXT NOT NULL,
            request TEXT NOT NULL,
            step TEXT NOT NULL,
            phase TEXT NOT NULL CHECK (phase IN ('begin', 'end', 'fail')),
            attempt INTEGER NOT NULL,
            at REAL NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX journal_run ON journal (run, step);
        CREATE TABLE log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            parent INTEGER,
            at REAL NOT NULL,
            session TEXT NOT NULL DEFAULT '',
            side TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL DEFAULT '',
            request TEXT NOT NULL DEFAULT '',
            severity TEXT NOT NULL,
            event TEXT NOT NULL,
            message TEXT NOT NULL,
            details TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX log_parent ON log (parent);
        CREATE TABLE docs (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (namespace, key)
        );
        """
    )


def _v2(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            started REAL NOT NULL,
            ended REAL,
            outcome TEXT NOT NULL DEFAULT '',
            config TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX log_session ON log (session);
        """
    )


MIGRATIONS: dict[int, Migration] = {1: _v1, 2: _v2}
"""Migration to version N, applied in order from the stored version + 1."""


def store_error(exc: sqlite3.Error, path: Path) -> StoreError | FilesystemError:
    """The error of the hierarchy for an SQLite failure: a full disk (``SQLITE_FULL``), a
    read-only or failing filesystem, or any other problem of the database."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    if name.startswith("SQLITE_FULL") or "disk is full" in str(exc):
        return DiskFullError(
            f"cannot write the state database {path}: no space left on its filesystem",
            hint=f"Free space there (`df -h {path.parent}`), then run the command again (a "
            "Broken request: `au retry`); nothing was half-written.",
            details={"file": str(path), "sqlite": name})
    if name.startswith("SQLITE_READONLY"):
        return FilesystemError(
            f"cannot write the state database {path}: it or its filesystem is read-only",
            hint=f"Remount it read-write (`findmnt -T {path.parent}`), then run the command "
            "again.", details={"file": str(path), "sqlite": name})
    if name.startswith("SQLITE_IOERR"):
        return FilesystemError(
            f"cannot use the state database {path}: input/output error ({name})",
            hint="Look at the kernel log (`journalctl -k`) and the filesystem, then run the "
            "command again.", details={"file": str(path), "sqlite": name})
    return StoreError(f"the state database {path} failed: {exc}",
                      hint="Check the instance folder and its filesystem.",
                      details={"file": str(path), "sqlite": name})


class Store:
    """One connection, serialised by a lock; every write is its own durable transaction.

    An SQLite failure comes out as an error of the hierarchy (``store_error``): a full disk
    is a DiskFullError and the transaction is rolled back, so the store stays usable once
    space is freed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._batch = 0
        """Depth of the running ``batch`` (only its thread, which holds the lock, sees it)."""
        try:
            self._db = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the state database {path}: {exc}",
                hint="Check the instance folder's permissions and free space.",
            ) from exc
        path.chmod(0o600)
        self.migrate()

    # -- schema -----------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()
            if row is None:
                return 0
            got = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            return int(got[0]) if got else 0

    def migrate(self) -> None:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the state database {self.path} has schema version {current}, newer than "
                f"this version of the tool understands ({SCHEMA_VERSION})",
                hint="Upgrade Active Upgrade for Linux to the version that wrote this instance.",
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.transaction() as db:
                MIGRATIONS[version](db)
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(version),),
                )

    # -- transactions -------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One durable transaction; inside a ``batch`` of this thread it joins the batch's
        (committed once, at the batch's end)."""
        with self._lock:
            if self._batch:
                yield self._db
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc
            try:
                yield self._db
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise store_error(exc, self.path) from exc
                raise
            else:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    raise store_error(exc, self.path) from exc

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes that belong together (a step's journal mark, its log entry, the status)
        in one transaction: one commit, so one wait for the disk instead of one each.
        Nothing inside is durable before the batch ends; a failure rolls all back."""
        with self.transaction():
            self._batch += 1
            try:
                yield
            finally:
                self._batch -= 1

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolled back itself (a full disk ends the transaction)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cur = self._db.execute(sql, params)
                cur.row_factory = sqlite3.Row
                return list(cur.fetchall())
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- documents of the platform parts ------------------------------------------------
    def get_doc(self, namespace: str, key: str) -> Any:
        """The JSON document stored at (namespace, key), or None."""
        rows = self.query("SELECT value FROM docs WHERE namespace=? AND key=?", (namespace, key))
        return json.loads(rows[0]["value"]) if rows else None

    def put_doc(self, namespace: str, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO docs (namespace, key, value) VALUES (?, ?, ?)",
                (namespace, key, json.dumps(value, sort_keys=True)),
            )

    def delete_doc(self, namespace: str, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM docs WHERE namespace=? AND key=?", (namespace, key))

    def docs(self, namespace: str) -> dict[str, Any]:
        """Every document of a namespace, by key, in key order."""
        rows = self.query(
            "SELECT key, value FROM docs WHERE namespace=? ORDER BY key", (namespace,)
        )
        return {r["key"]: json.loads(r["value"]) for r in rows}
