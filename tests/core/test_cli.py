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
from tests.support import au, new_instance


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = new_instance(tmp_path / "home")
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
    first = next(stream)
    assert first.kind == "status" and first.data["upgrade_state"] == "Idle"
    transport = httpx.HTTPTransport(uds=str(home / "api.sock"))
    with httpx.Client(transport=transport, base_url="http://au") as other:
        assert other.post("/actions/check", json={}).status_code == 200
    kinds = set()
    for ev in stream:
        kinds.add(ev.kind)
        if ev.kind == "log" and ev.data["event"] == "engine.state":
            break
    assert {"status", "log"} <= kinds


def test_a_missing_instance_is_named_and_never_created(tmp_path: Path) -> None:
    """A typo in AU_HOME never creates an instance or starts a daemon."""
    typo = tmp_path / "nonexistent" / "x"
    for args in (("status",), ("check",), ("split",), ("log",), ("daemon",)):
        r = au(typo, *args)
        assert r.returncode == 5, (args, r.stderr)
        assert f"there is no instance at {typo}" in r.stderr and "au init" in r.stderr
        assert "Traceback" not in r.stderr
    assert not typo.exists() and not typo.parent.exists()
    r = au(typo, "init")
    assert r.returncode == 0 and f"created the instance {typo}" in r.stdout
    try:
        assert au(typo, "status").returncode == 0
    finally:
        au(typo, "daemon", "--stop")


def test_a_broken_request_exits_with_its_error_class_hint_and_code(
    home: Path, tmp_path: Path
) -> None:
    """The error that broke a request keeps its class across the engine: `au split` exits
    with the SecurityError's code (80), its message and its own hint."""
    software = tmp_path / "opt-app"
    software.mkdir()
    action = software / "hook"
    action.write_text("#!/bin/sh\nexit 0\n")
    action.chmod(0o777)
    cfg = tmp_path / "app.toml"
    cfg.write_text(f'[[volume]]\npath = "{software}"\nrole = "system"\n\n[[action]]\n'
                   f'name = "hook"\nfile = "{action}"\ncontrol = "advanced"\n'
                   '\n[upgrade_side]\nisolation = "directory"\n')
    assert au(home, "volume", "adopt", str(software), "--role", "system").returncode == 0
    try:
        r = au(home, "check", "--config", str(cfg))
        assert r.returncode == 80, r.stderr  # the check reports it; nothing breaks
        assert json.loads(au(home, "status", "--json").stdout)["operational_state"] == "Ready"
        r = au(home, "split", "--config", str(cfg))  # the final checks refuse it first
        assert r.returncode == 60, r.stderr
        assert "PrepareSplit is Broken at step checks.final" in r.stderr and "AU-C015" in r.stderr
        action.chmod(0o755)  # the action runs at Abort too: fixed first
        assert au(home, "abort").returncode == 0 and au(home, "finish").returncode == 0
        # A failure inside a later step: the action's own error class (50) and hint.
        action.write_text('#!/bin/sh\n[ "$ACTIVE_UPGRADE_REQUEST" = PrepareSplit ] || exit 0\n'
                          "echo 'database not reachable' >&2\nexit 3\n")
        action.chmod(0o755)
        r = au(home, "split", "--config", str(cfg))
        assert r.returncode == 50, r.stderr
        assert "PrepareSplit is Broken at step actions.advanced:hook@Production" in r.stderr
        assert "database not reachable" in r.stderr
        assert "hint: Fix the cause the action reports" in r.stderr
        assert "au retry" in r.stderr and "au abort" in r.stderr
        s = json.loads(au(home, "status", "--json").stdout)
        assert s["error"]["error"] == "ActionError" and s["error"]["exit_code"] == 50
        assert au(home, "abort").returncode == 0
        assert au(home, "finish").returncode == 0
        s = json.loads(au(home, "status", "--json").stdout)
        # The one-off --config of that session does not become the next session's.
        assert s["config"] == "" and s["upgrade_state"] == "Idle"
    finally:
        au(home, "volume", "release", str(software))


def test_the_status_document_follows_its_schema(home: Path) -> None:
    """One definition (engine/view.py) gives the document and its JSON Schema; a real
    status validates, and the typed client reads it back unchanged."""
    import jsonschema

    from activeupgrade.engine.view import StatusView

    client = Client.for_instance(Instance(home))
    schema = client.get("/status/schema")
    doc = client.get("/status")
    jsonschema.validate(doc, schema)
    assert StatusView.from_dict(doc).to_dict() == doc
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "operational_state": "Sleepy"}, schema)


def test_every_command_imports_only_its_own_module() -> None:
    """The command table is complete: each command's parser comes from the module the
    table names (so `au status` imports nothing else)."""
    import argparse

    from activeupgrade.cli.main import COMMANDS, build_parser

    def commands(parser: argparse.ArgumentParser) -> set[str]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return set(sub.choices)

    assert commands(build_parser()) == set(COMMANDS)
    for name in COMMANDS:
        assert name in commands(build_parser(name)), name
