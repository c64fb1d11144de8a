"""A temporary instance with the web console open, started through the CLI (`au web`).

The instance gets a configuration with a real supervised service (the services tests' HTTP
application on a free loopback port) and, when the volumes part offers `au volume adopt`,
one adopted system volume. The daemon is stopped at the end (`au daemon --stop`) and the
service's keeper shut down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import HTTPAPP, au, end_instance, free_port, service_toml

SCREENSHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"

CONFIG = """
description = "Upgrade the test shop"
{volumes}
"""
"""The private link's addresses are left to the tool (a free /30 under its host-wide lock):
a /30 a test picks at random may be another run's at the same time."""


HOOK = """#!/bin/sh
if [ -e "{flag}" ]; then echo "the shop is not ready: {flag} exists" >&2; exit 1; fi
# A long step on demand: while the folder {gates} exists, report progress in four parts,
# each waiting for the test to create its gate file.
if [ -d "{gates}" ]; then
  for i in 1 2 3 4; do
    echo "PROGRESS $((i * 20)) part $i of 4"
    while [ ! -e "{gates}/$i" ]; do sleep 0.05; done
  done
fi
echo "ready for $1"
echo "a line on stderr" >&2
exit 0
"""


@dataclass
class Web:
    """An open web console."""

    home: Path
    url: str
    token: str
    service_port: int
    adopted: bool
    fail_flag: Path
    """While this file exists the readiness-check action fails (with an adopted volume)."""
    gates: Path
    """While this folder exists the readiness-check action is a long step: it reports
    progress in four parts and waits for the files 1, 2, 3, 4 in it (one per part)."""

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url.rstrip("/"), timeout=30.0,
                            headers={"Authorization": f"Bearer {self.token}"})

    def wait_ready(self, action: str, timeout: float = 120.0) -> dict[str, object]:
        """Poll the status (over the token-protected TCP API) until ``action`` ended."""
        deadline = time.monotonic() + timeout
        s: dict[str, object] = {}
        with self.api() as http:
            while time.monotonic() < deadline:
                s = http.get("/api/status").json()
                if s["operational_state"] != "Busy" and s.get("action") == action:
                    return s
                time.sleep(0.1)
        raise AssertionError(f"{action} did not end within {timeout}s; last status: {s}")


def _stop(home: Path, volume: Path | None) -> None:
    # A test that failed mid-session leaves a session: end it so the volume can be released.
    for action in ("abort", "finish"):
        au(home, action)
    if volume is not None:
        # Give the plain directory back (as root its live path is a bind mount); if the
        # volume cannot be released, at least leave no mount of this test behind.
        if au(home, "volume", "release", str(volume)).returncode != 0 and os.path.ismount(
                volume):
            subprocess.run(["umount", "--lazy", str(volume)], check=False)
    end_instance(home)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    home = tmp_path / "au-home"
    port = free_port()
    configs = home / "configs"
    configs.mkdir(parents=True)
    adopted = False
    volumes = ""
    vol: Path | None = None
    if au(home, "volume", "--help").returncode == 0:
        vol = tmp_path / "opt-shop"
        vol.mkdir()
        (vol / "VERSION").write_text("1\n")
        hook = vol / "ready-hook"
        hook.write_text(HOOK.format(flag=tmp_path / "hook-fails", gates=tmp_path / "gates"))
        hook.chmod(0o755)
        r = au(home, "volume", "adopt", str(vol), "--role", "system")
        assert r.returncode == 0, r.stderr
        adopted = True
        volumes = (f'\n[[volume]]\npath = "{vol}"\nrole = "system"\n'
                   f'\n[[action]]\nname = "ready-hook"\nfile = "{hook}"\n'
                   'control = "readiness-check"\nargs = ["%ACTIVE_UPGRADE_REQUEST%"]\n'
                   'description = "says it is ready"\n')
    (configs / "shop.toml").write_text(CONFIG.format(volumes=volumes) + service_toml(
        port, [sys.executable, str(HTTPAPP), "--version", "v1"], health_timeout="2s"))
    listen = f"127.0.0.1:{free_port()}"
    r = au(home, "web", "--listen", listen, "--json")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    try:
        yield Web(home, answer["url"], answer["token"], port, adopted, tmp_path / "hook-fails",
                  tmp_path / "gates")
    finally:
        _stop(home, vol if adopted else None)


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@dataclass
class Rollback:
    """``rollback.toml`` in the instance of ``web``: shop.toml plus an adopted data volume
    with a checkpoint and a 10-minute confirmation window after merge."""

    name: str
    data: Path


@pytest.fixture
def rollback(web: Web, tmp_path: Path) -> Iterator[Rollback]:
    data = tmp_path / "var-shop"
    data.mkdir()
    (data / "orders.log").write_text("order 1\n")
    r = au(web.home, "volume", "adopt", str(data), "--role", "data")
    assert r.returncode == 0, r.stderr
    configs = web.home / "configs"
    (configs / "rollback.toml").write_text(
        (configs / "shop.toml").read_text()
        + f'\n[[volume]]\npath = "{data}"\nrole = "data"\ncheckpoint = true\n'
        + '\n[merge]\nconfirm_within = "10m"\n')
    try:
        yield Rollback("rollback.toml", data)
    finally:
        for action in ("abort", "finish"):
            au(web.home, action)
        au(web.home, "volume", "release", str(data))
