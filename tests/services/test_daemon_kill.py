"""SIGKILL of the daemon during Split and in the middle of the merge, under load.

Everything through the CLI and a real daemon: a managed system volume holds the test
service's software (its VERSION says v1; the "upgrade" writes v2 into the Upgrade Side's
replica). The daemon is killed once in Split and once inside ExecuteMerge right after the
service was stopped (the engine's fault-pause hook): clients then wait in the backlog of
the socket the keeper still holds, until the restarted daemon resumes the merge by itself
and starts the upgraded service (no operator). Not one request may fail.
"""

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

from activeupgrade import proc
from activeupgrade.api.client import Client
from activeupgrade.instance import Instance
from tests import support
from tests.support import (
    DIRECTORY_SIDE,
    end_instance,
    free_port,
    service_toml,
    software_folder,
    volume_toml,
    wait_until,
)

from .load import Load


def shop_config(software: Path, port: int) -> str:
    """The system volume holding the service's software, the service reading its VERSION."""
    return volume_toml(software) + service_toml(port, [
        sys.executable, f"{software}/httpapp.py", "--version-file", f"{software}/VERSION"]
    ) + DIRECTORY_SIDE


def au(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return support.au(home, *args, timeout=180, check=check)


def kill_daemon(home: Path) -> None:
    pid = int((home / "engine.lock").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            return
        time.sleep(0.02)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    home = tmp_path / "home"
    software = software_folder(tmp_path, "v1")
    port = free_port()
    cfg = tmp_path / "shop.toml"
    cfg.write_text(shop_config(software, port))
    au(home, "volume", "adopt", str(software), "--role", "system")
    Client.for_instance(Instance(home)).post("/config/loaded", {"path": str(cfg)})
    yield home, software, port
    au(home, "service", "stop", "shop", check=False)
    status = json.loads(au(home, "status", "--json", check=False).stdout or "{}")
    if status.get("upgrade_state") == "Merge":
        au(home, "commit", check=False)
    if status.get("upgrade_state") in ("Merge", "Commit", "Abort"):
        au(home, "finish", check=False)
    au(home, "volume", "release", str(software), check=False)
    end_instance(home)


def test_daemon_killed_in_split_and_inside_merge(host: tuple[Path, Path, int]) -> None:
    home, software, port = host
    au(home, "service", "start", "shop")
    load = Load("127.0.0.1", port, threads=6).start()
    load.wait_for(200)

    au(home, "split")
    kill_daemon(home)  # during Split
    load.wait_for(300)
    vol = json.loads(au(home, "volume", "show", str(software), "--json").stdout)
    upgrade = Path(vol["replicas"][vol["session"]["upgrade"]])
    (upgrade / "VERSION").write_text("v2\n")  # the "installer" on the Upgrade Side

    # Merge with the engine told to pause right after the service was stopped; kill there.
    kill_inside(home, ("merge",), "ExecuteMerge/services.stop:shop/end")
    stopped_at = time.time()
    time.sleep(0.5)  # clients are waiting in the backlog now

    # The restarted daemon resumes the interrupted merge by itself: no `au retry`.
    def merged() -> bool:
        st = json.loads(au(home, "status", "--json").stdout)
        assert st["operational_state"] != "Broken", st["reason"]
        return bool(st["upgrade_state"] == "Merge" and st["operational_state"] == "Ready")

    wait_until(merged, 120, "the restarted daemon to finish the merge")
    log = au(home, "log", "--json").stdout
    assert "engine.resume" in log and "services.stop:shop" in log
    load.wait_for(200)

    # Abort from Merge, killed right after the upgraded service was stopped: the restarted
    # daemon finishes the abort, the original software serves again.
    kill_inside(home, ("abort", "--yes"), "Abort/services.abort-stop:shop/end")

    def aborted() -> bool:
        st = json.loads(au(home, "status", "--json").stdout)
        assert st["operational_state"] != "Broken", st["reason"]
        return bool(st["upgrade_state"] == "Abort" and st["operational_state"] == "Ready")

    wait_until(aborted, 120, "the restarted daemon to finish the abort")
    resumed = [e for e in json.loads(au(home, "log", "--json").stdout)
               if e["event"] == "engine.resume"]
    assert [r["details"]["request"] for r in resumed] == ["ExecuteMerge", "Abort"]
    load.wait_for(200)
    report = load.stop()
    assert report.failed == [], report.failed[:3]
    assert [s.split()[0] for s in report.servers()] == ["v1", "v2", "v1"]
    # Some clients waited through the kills and the resumed requests; none failed.
    assert report.longest_wait >= 0.5
    assert time.time() - stopped_at > 0.5


def kill_inside(home: Path, command: tuple[str, ...], fault: str) -> None:
    """Run ``au COMMAND`` on a daemon told to pause at ``fault``; SIGKILL it there. (The
    daemon the last command started is stopped so that a new one starts with the hook.)"""
    old = int((home / "engine.lock").read_text().split()[0])
    au(home, "daemon", "--stop")
    # `--stop` only asks: the next command must not reach the stopping daemon.
    wait_until(lambda: not proc.alive(old), 60, "the daemon to stop")
    run = subprocess.Popen(
        [sys.executable, "-m", "activeupgrade", *command], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        env={**os.environ, "AU_HOME": str(home), "AU_FAULT_PAUSE": fault},
    )
    paused = home / "run" / "paused"
    wait_until(paused.exists, 60, f"{' '.join(command)} to reach {fault}")
    kill_daemon(home)  # the application is stopped, the socket held
    run.wait(30)
    paused.unlink(missing_ok=True)
