"""The confirmation window after merge (``[merge] confirm_within``), through the CLI and a
real daemon, with a real service under load.

- Not confirmed in time: the daemon aborts from Merge by itself (logged with the reason);
  the clients are served by the original version again, none failed.
- Confirmed in time (`au confirm`): the merge stays; Confirm is no longer offered; Commit.
- The deadline is durable: the daemon is stopped during the window and started after the
  deadline; the abort runs at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activeupgrade import proc
from activeupgrade.api.client import Client
from activeupgrade.instance import Instance
from tests.support import end_instance, free_port, software_folder, wait_until

from .load import Load
from .test_daemon_kill import au, shop_config


def status(home: Path) -> dict[str, Any]:
    return dict(json.loads(au(home, "status", "--json").stdout))


def upgrade(home: Path, software: Path) -> None:
    """The "installer" on the Upgrade Side: v2 into the upgraded replica."""
    vol = json.loads(au(home, "volume", "show", str(software), "--json").stdout)
    (Path(vol["replicas"][vol["session"]["upgrade"]]) / "VERSION").write_text("v2\n")


def in_state(home: Path, state: str) -> bool:
    st = status(home)
    assert st["operational_state"] != "Broken", st["reason"]
    return bool(st["upgrade_state"] == state and st["operational_state"] == "Ready")


@pytest.fixture
def host(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, Path, int]]:
    home = tmp_path / "home"
    software = software_folder(tmp_path, "v1")
    port = free_port()
    cfg = tmp_path / "shop.toml"
    cfg.write_text(shop_config(software, port)
                   + f'\n[merge]\nconfirm_within = "{request.param}"\n')
    au(home, "volume", "adopt", str(software), "--role", "system")
    Client.for_instance(Instance(home)).post("/config/loaded", {"path": str(cfg)})
    au(home, "service", "start", "shop")
    yield home, software, port
    st = json.loads(au(home, "status", "--json", check=False).stdout or "{}")
    if st.get("upgrade_state") == "Merge":
        au(home, "abort", check=False)
    if st.get("upgrade_state") in ("Merge", "Commit", "Abort"):
        au(home, "finish", check=False)
    au(home, "service", "stop", "shop", check=False)
    au(home, "volume", "release", str(software), check=False)
    end_instance(home)


@pytest.mark.parametrize("host", ["2s"], indirect=True)
def test_an_unconfirmed_merge_aborts_by_itself(host: tuple[Path, Path, int]) -> None:
    home, software, port = host
    load = Load("127.0.0.1", port, threads=4).start()
    load.wait_for(100)
    au(home, "split")
    upgrade(home, software)
    au(home, "merge")
    load.wait_for(50)  # served by v2 meanwhile
    wait_until(lambda: in_state(home, "Abort"), 120, "the automatic abort from Merge",
               poll=0.2)
    load.wait_for(100)
    report = load.stop()
    assert report.failed == [], report.failed[:3]
    assert [s.split()[0] for s in report.servers()] == ["v1", "v2", "v1"]
    assert all(s.server.startswith("v1") for s in sorted(
        report.samples, key=lambda s: s.done)[-50:])
    log = json.loads(au(home, "log", "--json").stdout)
    expired = [e for e in log if e["event"] == "merge.confirm.expired"]
    assert len(expired) == 1
    assert "not confirmed within 2s" in expired[0]["message"]
    assert "aborting from Merge automatically" in expired[0]["message"]
    window = status(home)["facts"]["confirm_window"]
    assert window["outcome"] == "expired"
    assert "aborted automatically" in au(home, "status").stdout


@pytest.mark.parametrize("host", ["10m"], indirect=True)
def test_a_merge_confirmed_in_time_stays(host: tuple[Path, Path, int]) -> None:
    home, software, _ = host
    au(home, "split")
    refused = au(home, "confirm", check=False)
    assert refused.returncode != 0 and "not allowed in Split" in refused.stderr
    upgrade(home, software)
    au(home, "merge", check=True)
    st = status(home)
    assert "confirm" in st["allowed_actions"]
    window = st["facts"]["confirm_window"]
    assert window["outcome"] == "open" and 590 < window["seconds_left"] <= 600
    text = au(home, "status").stdout
    assert f"confirm by {window['deadline_time']}" in text and "left" in text
    au(home, "confirm", check=True)
    st = status(home)
    assert st["upgrade_state"] == "Merge" and "confirm" not in st["allowed_actions"]
    assert st["facts"]["confirm_window"]["outcome"] == "confirmed"
    again = au(home, "confirm", check=False)
    assert again.returncode != 0 and "no confirmation window is open" in again.stderr
    assert any(e["event"] == "merge.confirm" for e in json.loads(
        au(home, "log", "--json").stdout))
    au(home, "commit", check=True)
    assert in_state(home, "Commit")


@pytest.mark.parametrize("host", ["3s"], indirect=True)
def test_the_deadline_survives_a_daemon_restart(host: tuple[Path, Path, int]) -> None:
    home, software, port = host
    au(home, "split")
    upgrade(home, software)
    au(home, "merge", check=True)
    deadline = float(status(home)["facts"]["confirm_window"]["deadline"])
    pid = int((home / "engine.lock").read_text().split()[0])
    au(home, "daemon", "--stop")
    wait_until(lambda: not proc.alive(pid), 60, "the daemon to stop")
    wait_until(lambda: time.time() > deadline + 1, 60, "the deadline to pass")
    # The next command starts the daemon again: it finds the deadline passed and aborts.
    wait_until(lambda: in_state(home, "Abort"), 120, "the abort after the restart",
               poll=0.2)
    load = Load("127.0.0.1", port, threads=2).start()
    load.wait_for(20)
    report = load.stop()
    assert report.failed == [] and {s.split()[0] for s in report.servers()} == {"v1"}
    log = json.loads(au(home, "log", "--json").stdout)
    assert [e["event"] for e in log].count("merge.confirm.expired") == 1
