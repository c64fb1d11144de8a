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
