"""A daemon crash while an action runs leaves no process behind (issue: the action's
process group kept running and Retry started a second copy). The daemon records each
running action's process group; when it starts again it kills what is left first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from activeupgrade import proc
from tests.support import DIRECTORY_SIDE, au, new_instance, wait_until

ACTION = """#!/bin/sh
sleep 300 &
echo "$$ $!" > {pids}.tmp && mv {pids}.tmp {pids}
wait
"""


def _daemon_pid(home: Path) -> int:
    return int((home / "engine.lock").read_text().split()[0])


def test_the_next_daemon_kills_an_action_left_running(tmp_path: Path) -> None:
    home = new_instance(tmp_path / "home")
    software = tmp_path / "opt"
    software.mkdir()
    pids = tmp_path / "pids"
    action = software / "hook"
    action.write_text(ACTION.format(pids=pids))
    action.chmod(0o755)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[volume]]\npath = "{software}"\nrole = "system"\n\n[[action]]\n'
                   f'name = "hook"\nfile = "{action}"\ncontrol = "readiness-check"\n'
                   f'timeout = 600\n{DIRECTORY_SIDE}')
    cfg.chmod(0o644)
    check = subprocess.Popen(
        [sys.executable, "-m", "activeupgrade", "check", "--config", str(cfg)],
        env={**os.environ, "AU_HOME": str(home)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(pids.exists, 60, "the action to start")
        shell, child = (int(p) for p in pids.read_text().split())
        assert proc.alive(shell) and proc.alive(child)
        daemon = _daemon_pid(home)
        os.kill(daemon, signal.SIGKILL)
        wait_until(lambda: not proc.alive(daemon), 30, "the daemon to die")
        assert proc.alive(shell) and proc.alive(child)  # the crash left them running
        r = au(home, "status", "--json")  # starts the daemon again
        assert r.returncode == 0, r.stderr
        wait_until(lambda: not proc.alive(shell) and not proc.alive(child), 30,
                   "the leftover action to be killed")
        log = au(home, "log", "--event", "action.leftover")
        assert "process group" in log.stdout and "hook" in log.stdout, log.stdout
        # Nothing is recorded any more: a second start kills nothing.
        assert au(home, "daemon", "--stop").returncode == 0
        wait_until(lambda: au(home, "status").returncode == 0, 60, "the daemon again")
        log = au(home, "log", "--event", "action.leftover")
        assert log.stdout.count("was killed") == 1, log.stdout
    finally:
        check.kill()
        check.wait()
        au(home, "daemon", "--stop")
