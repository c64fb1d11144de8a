"""The CLI through its entry point, against a real daemon on a real Unix socket."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from activeupgrade.api.client import Client
from activeupgrade.instance import Instance
from tests.support import au


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = tmp_path / "home"
    yield h
    au(h, "daemon", "--stop")


def test_status_json_in_a_fresh_instance_is_idle_ready(home: Path) -> None:
    r = au(home, "status", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["upgrade_state"] == "Idle" and s["operational_state"] == "Ready"
    assert s["partner_state"] == "None" and s["session"] == ""
    assert s["allowed_actions"] == ["check", "split"]
    assert {"duplex", "upgrade_state", "operational_state", "partner_state",
            "allowed_actions", "session"} <= set(s)


def test_refused_action_exits_nonzero_naming_the_allowed_ones(home: Path) -> None:
    r = au(home, "merge")
    assert r.returncode == 4
    assert "`merge` is not allowed in Idle / Ready" in r.stderr
    assert "Allowed now: check, split." in r.stderr
    assert "Traceback" not in r.stderr


def test_usage_error_has_no_traceback(home: Path) -> None:
    r = au(home, "log", "--severity", "loud")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "invalid choice" in r.stderr


def test_socket_is_private_and_a_second_engine_is_refused(home: Path) -> None:
    assert au(home, "status").returncode == 0
    mode = stat.S_IMODE(os.stat(home / "api.sock").st_mode)
    assert mode == 0o600
    r = au(home, "daemon")
    assert r.returncode == 5
    assert "another engine already holds the instance" in r.stderr


def test_session_through_the_cli_with_log_save_and_openapi(home: Path, tmp_path: Path) -> None:
    for verb in ("split", "merge", "commit", "finish"):
        r = au(home, verb)
        assert r.returncode == 0, (verb, r.stderr)
    s = json.loads(au(home, "status", "--json").stdout)
    assert s["upgrade_state"] == "Idle"
    saved = tmp_path / "log.json"
    r = au(home, "log", "--save", str(saved))
    assert r.returncode == 0, r.stderr
    entries = json.loads(saved.read_text())
    events = [e["event"] for e in entries]
    assert events.count("engine.state") == 4
    assert {"session", "side", "state", "request", "severity", "event", "message"} <= set(
        entries[-1])
    text = tmp_path / "log.txt"
    assert au(home, "log", "--save", str(text)).returncode == 0
    assert "finish completed: upgrade state is Idle" in text.read_text()
    r = au(home, "log", "--json", "--severity", "notice", "--request", "Commit")
    assert r.returncode == 0
    assert {e["request"] for e in json.loads(r.stdout)} == {"Commit"}
    client = Client.for_instance(Instance(home), start=False)
    spec = client.get("/openapi.json")
    assert spec["openapi"].startswith("3.1")
    assert "/status" in spec["paths"] and "/actions/{action}" in spec["paths"]


def test_event_stream_delivers_status_and_log(home: Path) -> None:
    assert au(home, "status").returncode == 0
    client = Client.for_instance(Instance(home), start=False)
    stream = client.events()
    kind, data = next(stream)
    assert kind == "status" and data["upgrade_state"] == "Idle"
    transport = httpx.HTTPTransport(uds=str(home / "api.sock"))
    with httpx.Client(transport=transport, base_url="http://au") as other:
        assert other.post("/actions/check", json={}).status_code == 200
    kinds = set()
    for kind, data in stream:
        kinds.add(kind)
        if kind == "log" and data["event"] == "engine.state":
            break
    assert {"status", "log"} <= kinds
