"""The web console's application in-process over a real daemon object (no listener)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.daemon import Daemon
from activeupgrade.instance import Instance
from activeupgrade.model.states import Severity
from activeupgrade.ui.web import app as web_app
from activeupgrade.ui.web.auth import WebAuth

from .asgi import AppClient

TOKEN = "t" * 43


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(Instance(tmp_path / "home"))
    try:
        yield d
    finally:
        d.close()


def test_log_page_shows_the_newest_entries(daemon: Daemon,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_app, "LOG_SHOWN", 5)
    monkeypatch.setattr(web_app, "LOG_PAGE", 3)
    for i in range(20):
        daemon.log.write("test.entry", f"entry number {i}", severity=Severity.NOTICE)
    client = AppClient(web_app.build_web_app(daemon, WebAuth(TOKEN)),
                        headers={"Authorization": f"Bearer {TOKEN}"})
    page = client.get("/log?event=test.").text
    shown = re.findall(r"entry number (\d+)</a>", page)
    assert shown == ["15", "16", "17", "18", "19"]
    assert "the newest 5 of 20 entries" in re.sub(r"<[^>]+>", "", page)
    saved = client.get("/log/export?format=text&event=test.")
    assert saved.headers["content-disposition"] == 'attachment; filename="activity-log.txt"'
    assert saved.text.count("entry number") == 20


def test_pages_render_for_a_token_client(daemon: Daemon) -> None:
    client = AppClient(web_app.build_web_app(daemon, WebAuth(TOKEN)),
                        headers={"Authorization": f"Bearer {TOKEN}"})
    for path, marker in (("/upgrade", 'id="btn-split"'), ("/summary", "What each request"),
                         ("/config", "New file"), ("/log", 'id="log-table"')):
        r = client.get(path)
        assert r.status_code == 200 and marker in r.text, path
        assert '<a class="skip" href="#main">' in r.text
    assert client.get("/log/999999").status_code == 200
    assert "no activity log entry 999999" in client.get("/log/999999").text
    assert client.get("/config?file=../etc/passwd").status_code == 200
    assert "not a configuration file name" in client.get("/config?file=../x.toml").text


def test_metrics_on_the_listener_behind_the_token(daemon: Daemon) -> None:
    import time

    app = web_app.build_web_app(daemon, WebAuth(TOKEN))
    with AppClient(app) as anonymous:
        refused = anonymous.get("/metrics", follow_redirects=False)
        assert refused.status_code in (401, 303), refused.status_code
        assert "activeupgrade_" not in refused.text
    now = time.time()
    with daemon.store.transaction() as db:
        db.execute("INSERT INTO sessions (id, started, ended, outcome, config) VALUES "
                   "('s-1', ?, ?, 'committed', ''), ('s-2', ?, NULL, '', '')",
                   (now - 700, now - 100, now - 50))
    daemon.log.write("volume.resync.done", "resynced", details={"copied_bytes": 4096})
    daemon.log.write("volume.resync.done", "resynced", details={"copied_bytes": 1000})
    daemon.log.write("check.fail", "AU-C011 ...", details={"id": "AU-C011"})
    daemon.log.write("request.broken", "broken", details={"error": {"error": "ServiceError"}})
    with AppClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = set(r.text.splitlines())
    for expected in (
        'activeupgrade_upgrade_state{state="Idle"} 1',
        'activeupgrade_upgrade_state{state="Merge"} 0',
        'activeupgrade_operational_state{state="Ready"} 1',
        'activeupgrade_sessions{outcome="committed"} 1',
        'activeupgrade_sessions{outcome="running"} 1',
        'activeupgrade_session_duration_seconds_bucket{le="900"} 1',
        'activeupgrade_session_duration_seconds_bucket{le="300"} 0',
        "activeupgrade_session_duration_seconds_count 1",
        "activeupgrade_resync_bytes_total 5096",
        'activeupgrade_health_check_failures_total{check="AU-C011"} 1',
        'activeupgrade_request_failures_total{error="ServiceError"} 1',
        "# TYPE activeupgrade_session_duration_seconds histogram",
    ):
        assert expected in lines, (expected, r.text)
    for line in r.text.splitlines():  # the text format: comments or `name{labels} value`
        assert line.startswith("# ") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? [0-9.e+-]+", line), line
    with AppClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        history = client.get("/api/history").json()
    assert [h["session"] for h in history] == ["s-2", "s-1"]
    assert history[1]["outcome"] == "committed" and history[1]["seconds"] == 600.0
    assert history[0]["outcome"] == "running" and history[0]["ended_time"] is None
