"""``au service`` through the CLI entry point and a real daemon; SIGKILL of the daemon."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.api.client import Client
from activeupgrade.instance import Instance
from tests.support import (
    HTTPAPP,
    au,
    end_instance,
    free_port,
    new_instance,
    service_toml,
    volume_toml,
)

from .load import Load

CONFIG = 'description = "the test shop"\n'


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    home = tmp_path / "home"
    port = free_port()
    (tmp_path / "opt").mkdir()
    cfg = tmp_path / "shop.toml"
    cfg.write_text(CONFIG + volume_toml(tmp_path / "opt") + service_toml(
        port, [sys.executable, str(HTTPAPP), "--version", "v1"], health_timeout="2s"))
    Client.for_instance(Instance(new_instance(home))).post("/config/loaded",
                                                           {"path": str(cfg)})
    yield home, port
    end_instance(home)


def daemon_pid(home: Path) -> int:
    return int((home / "engine.lock").read_text().split()[0])


def test_service_commands_and_daemon_sigkill(home: tuple[Path, int]) -> None:
    h, port = home
    r = au(h, "service", "list", "--json")
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)
    assert row["name"] == "shop" and not row["running"] and row["backend"] == "supervisor"
    r = au(h, "service", "start", "shop")
    assert r.returncode == 0 and "started" in r.stdout, r.stderr
    st = json.loads(au(h, "service", "status", "shop", "--json").stdout)
    assert st["running"] and st["healthy"] and st["sockets"][0]["fd"] == 3
    assert st["handover"] == "listen-fds" and st["hold_limit"] == 30.0
    text = au(h, "service", "status", "shop").stdout
    assert f"socket http: 127.0.0.1:{port} (fd 3, listen-fds, held by the keeper; clients " \
        "wait at most 30s)" in text
    r = au(h, "service", "list")
    assert "running" in r.stdout and f"127.0.0.1:{port}" in r.stdout

    load = Load("127.0.0.1", port, threads=4).start()
    load.wait_for(100)
    os.kill(daemon_pid(h), signal.SIGKILL)
    time.sleep(0.5)
    load.wait_for(200)
    # The CLI starts a new daemon, which re-adopts the keeper and the application.
    again = json.loads(au(h, "service", "status", "shop", "--json").stdout)
    assert again["keeper_pid"] == st["keeper_pid"] and again["pid"] == st["pid"]
    r = au(h, "service", "stop", "shop")
    assert r.returncode == 0 and "sockets stay held" in r.stdout, r.stderr
    assert au(h, "service", "status", "shop").returncode == 40  # ServiceError: not running
    assert au(h, "service", "start", "shop").returncode == 0
    load.wait_for(100)
    report = load.stop()
    assert report.failed == [], report.failed[:3]
    r = au(h, "service", "status", "nope")
    assert r.returncode == 40 and "no service named 'nope'" in r.stderr
