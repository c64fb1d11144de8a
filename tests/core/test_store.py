"""The stored formats, pinned: the status document, the schema, and migrations."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from activeupgrade.activity import ActivityLog, Context
from activeupgrade.bus import Bus
from activeupgrade.engine.status import Status, load_status, save_status
from activeupgrade.errors import StoreError
from activeupgrade.model.states import Severity
from activeupgrade.store import db as dbmod
from activeupgrade.store.db import SCHEMA_VERSION, Store

GOLDEN = Path(__file__).parent / "golden"


def test_status_document_round_trips_the_golden_format(tmp_path: Path) -> None:
    golden = json.loads((GOLDEN / "status-v2.json").read_text())
    status = Status.from_dict(golden)
    assert status.to_dict() == golden
    store = Store(tmp_path / "state.db")
    save_status(store, status)
    stored = json.loads(store.query("SELECT doc FROM status WHERE id=1")[0]["doc"])
    stored.pop("updated")
    expected = dict(golden)
    expected.pop("updated")
    assert stored == expected
    loaded = load_status(store)
    assert loaded.reason == "volumes.resync:shop: disk full"
    assert loaded.error is not None and loaded.error["exit_code"] == 20


def test_a_status_of_the_first_format_still_loads() -> None:
    """Format 1 (before error documents and operations) is read as it was, the new
    fields empty."""
    old = json.loads((GOLDEN / "status.json").read_text())
    status = Status.from_dict(old)
    assert status.to_dict() == {**old, "format": 2, "sub_request": None, "error": None,
                                "operation": None, "last_operation": None}


def test_schema_is_pinned(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    assert store.schema_version() == SCHEMA_VERSION == 2
    tables = {r["name"] for r in store.query(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")}
    assert tables == {"meta", "status", "journal", "log", "docs", "sessions"}
    cols = [r["name"] for r in store.query("PRAGMA table_info(log)")]
    assert cols == ["id", "parent", "at", "session", "side", "state", "request", "severity",
                    "event", "message", "details"]
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert store.query("PRAGMA synchronous")[0][0] == 2  # FULL


def test_version_1_database_migrates_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("BEGIN")
    dbmod._v1(raw)
    raw.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    raw.execute("INSERT INTO docs VALUES ('volumes', 'shop', '{\"path\": \"/opt/shop\"}')")
    raw.execute("INSERT INTO log (at, severity, event, message) VALUES (1.0, 'info', 'x', 'old')")
    raw.execute("COMMIT")
    raw.close()
    store = Store(path)
    assert store.schema_version() == 2
    assert store.get_doc("volumes", "shop") == {"path": "/opt/shop"}
    assert store.query("SELECT message FROM log")[0]["message"] == "old"
    assert store.query("SELECT COUNT(*) FROM sessions")[0][0] == 0


def test_newer_database_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = Store(path)
    with store.transaction() as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    store.close()
    with pytest.raises(StoreError, match="schema version 99") as err:
        Store(path)
    assert "Upgrade Active Upgrade" in err.value.hint


def test_activity_log_tree_filters_and_rotation(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    log = ActivityLog(store, Bus(), tmp_path / "logs")
    ctx = Context("s1", "Production", "Split", "ExecuteMerge")
    req = log.write("request.start", "ExecuteMerge started", ctx=ctx, severity=Severity.NOTICE)
    step = log.write("step.start", "stop shop", parent=req, ctx=ctx)
    action = log.write("action.start", "stop-app.py", parent=step, ctx=ctx)
    log.write("action.output", "stopping", parent=action, ctx=ctx, severity=Severity.DEBUG)
    log.write("other", "unrelated", ctx=Context("s2"), severity=Severity.ERROR)
    assert [e.id for e in log.entries(root=req)] == [req, step, action, action + 1]
    assert [e.message for e in log.entries(min_severity=Severity.ERROR)] == ["unrelated"]
    assert len(log.entries(session="s1")) == 4
    archive = log.rotate(keep=2)
    assert archive is not None and archive.exists()
    assert [e.message for e in log.entries()] == ["stopping", "unrelated"]


def test_a_batch_commits_its_writes_once_or_not_at_all(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    other = Store(tmp_path / "state.db")  # another connection: sees only what is committed
    try:
        with store.batch():
            store.put_doc("t", "a", 1)
            save_status(store, Status(step="inside"))
            assert other.get_doc("t", "a") is None  # not committed yet
            assert store.get_doc("t", "a") == 1  # its own writes are seen inside
        assert other.get_doc("t", "a") == 1 and load_status(other).step == "inside"
        with pytest.raises(RuntimeError), store.batch():
            store.put_doc("t", "b", 2)
            raise RuntimeError("a failure inside the batch")
        assert store.get_doc("t", "b") is None and other.get_doc("t", "b") is None
        store.put_doc("t", "c", 3)  # transactions work as before after a batch
        assert other.get_doc("t", "c") == 3
    finally:
        other.close()
        store.close()
