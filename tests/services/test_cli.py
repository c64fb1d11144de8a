"""``au service`` through the CLI entry point and a real daemon; SIGKILL of the daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.api.client import Client
from activeupgrade.instance import Instance

from .helpers import HTTPAPP, free_port
from .load import Load


def au(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "activeupgrade", *args], capture_output=True, text=True,
        env={**os.environ, "AU_HOME": str(home)}, timeout=120, stdin=subprocess.DEVNULL,
    )


CONFIG = """
description = "the test shop"

[[volume]]
path = "{opt}"
role = "system"

[[service]]
name = "shop"
command = ["{python}", "{app}", "--version", "v1"]
stop_grace = "5s"
start_timeout = "20s"

[[service.socket]]
name = "http"
listen = "127.0.0.1:{port}"

[service.health]
kind = "http"
target = "http://127.0.0.1:{port}/"
timeout = "2s"
"""


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    home = tmp_path / "home"
    port = free_port()
    (tmp_path / "opt").mkdir()
    cfg = tmp_path / "shop.toml"
    cfg.write_text(CONFIG.format(opt=tmp_path / "opt", python=sys.executable, app=HTTPAPP,
                                 port=port))
    Client.for_instance(Instance(home)).post("/config/loaded", {"path": str(cfg)})
    yield home, port
    au(home, "service", "stop", "shop")
    au(home, "daemon", "--stop")
    from activeupgrade.config.model import ServiceSpec
    from activeupgrade.platform.services.supervisor import Supervisor
    from activeupgrade.store.db import Store

    inst = Instance(home)
    Supervisor(inst, Store(inst.db)).shutdown(ServiceSpec(name="shop", stop_grace=2))


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
    assert au(h, "service", "status", "shop").returncode == 3
    assert au(h, "service", "start", "shop").returncode == 0
    load.wait_for(100)
    report = load.stop()
    assert report.failed == [], report.failed[:3]
    r = au(h, "service", "status", "nope")
    assert r.returncode == 40 and "no service named 'nope'" in r.stderr
