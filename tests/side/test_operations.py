"""``au exec``, ``au shell`` and ``au restart-upgrade-side`` through the CLI: the side's root,
working folder, clean environment and credentials; each logged with exit value and
duration; a side that cannot be built says why in the error itself."""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activeupgrade.instance import Instance
from activeupgrade.store.db import Store
from tests.support import au, end_instance, volume_toml, wait_until

from ..volumes.helpers import unmount_under


@pytest.fixture
def split(tmp_path: Path, needs_root: None) -> Iterator[tuple[Path, Path]]:
    home, software, data = tmp_path / "home", tmp_path / "opt-app", tmp_path / "var-app"
    software.mkdir()
    data.mkdir()
    (software / "version").write_text("1\n")
    cfg = tmp_path / "app.toml"
    cfg.write_text(volume_toml(software) + volume_toml(data, "data"))
    try:
        for path, role in ((software, "system"), (data, "data")):
            assert au(home, "volume", "adopt", str(path), "--role", role).returncode == 0
        assert au(home, "config", "load", str(cfg)).returncode == 0
        done = au(home, "split")
        assert done.returncode == 0, done.stderr
        yield home, software
    finally:
        au(home, "abort")
        au(home, "finish")
        for name in ("opt-app", "var-app"):
            au(home, "volume", "release", str(tmp_path / name).lstrip("/").replace("/", "-"))
        end_instance(home, ())
        unmount_under(tmp_path)


def entries(home: Path, event: str) -> list[dict[str, Any]]:
    store = Store(Instance(home).db)
    try:
        return [{"message": r["message"], "parent": r["parent"], "id": r["id"],
                 **json.loads(r["details"])}
                for r in store.query("SELECT * FROM log WHERE event = ? ORDER BY id", (event,))]
    finally:
        store.close()


def test_exec_environment_credentials_and_log(split: tuple[Path, Path]) -> None:
    home, _ = split
    env = {"SECRET_TOKEN": "s3cret", "VIRTUAL_ENV": "/venv", "PYTHONPATH": "/x"}
    done = au(home, "exec", "--", "sh", "-c", "pwd; env", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "/"
    seen = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    for name in ("AU_HOME", "SECRET_TOKEN", "VIRTUAL_ENV", "PYTHONPATH"):
        assert name not in seen, (name, seen)
    assert seen["ACTIVE_UPGRADE_SIDE"] == "Upgrade" and seen["HOME"] == "/root"
    who = au(home, "exec", "--user", "nobody", "--", "sh", "-c", "id -un; echo $HOME")
    assert who.stdout.split() == ["nobody", "/nonexistent"], who.stderr
    assert au(home, "exec", "--user", "nosuchuser", "--", "true").returncode == 125
    failed = au(home, "exec", "--", "sh", "-c", "echo oops >&2; exit 3")
    assert failed.returncode == 3 and "oops" in failed.stderr

    logged = entries(home, "side.exec")
    assert [e["argv"][:2] for e in logged][-1] == ["sh", "-c"]
    assert logged[-1]["exit"] == 3 and logged[-1]["duration"] > 0
    ends = entries(home, "side.exec.done")
    assert ends[-1]["parent"] == logged[-1]["id"] and "exit 3" in ends[-1]["message"]
    output = [e for e in entries(home, "side.exec.output") if e["parent"] == logged[-1]["id"]]
    assert [e["message"] for e in output] == ["oops"] and output[0]["stream"] == "stderr"
    assert any(e["user"] == "nobody" for e in logged)


def read_until(fd: int, needle: bytes, timeout: float = 30, seen: bytes = b"") -> bytes:
    """What the terminal showed until ``needle`` (``seen``: already read)."""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen in {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_shell_on_a_terminal_is_logged(split: tuple[Path, Path]) -> None:
    home, _ = split
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["AU_HOME"] = str(home)
        os.environ["TERM"] = "dumb"
        os.execv(sys.executable, [sys.executable, "-m", "activeupgrade", "shell"])
    try:
        read_until(fd, b"-upgrade")  # the prompt shows the Upgrade Side's hostname
        # (the terminal echoes the command: the marker is computed, so only the output has it)
        os.write(fd, b"echo X$((6*7))Y-$(hostname)-$AU_HOME-Z\n")
        out = read_until(fd, b"X42Y")
        out = read_until(fd, b"-Z", seen=out[out.index(b"X42Y"):])
        assert b"-upgrade--Z" in out, out
        os.write(fd, b"exit 7\n")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 7
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)
    opened, ended = entries(home, "side.shell"), entries(home, "side.shell.end")
    assert opened and ended and ended[-1]["parent"] == opened[-1]["id"]
    assert ended[-1]["returncode"] == 7 and opened[-1]["returncode"] == 7
    assert ended[-1]["seconds"] > 0


def test_restart_is_logged_keeps_installs_and_empties_tmp(split: tuple[Path, Path]) -> None:
    home, software = split
    kept = f"/var/log/au-restart-test-{secrets.token_hex(4)}"  # another run may run this now
    setup = au(home, "exec", "--", "sh", "-c", f"echo 2 > {software}/version; "
               f"echo kept > {kept}; echo gone > /tmp/au-restart-test")
    assert setup.returncode == 0, setup.stderr
    done = au(home, "restart-upgrade-side", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["partner_state"] == "OS Up"
    after = au(home, "exec", "--", "sh", "-c", f"cat {software}/version {kept}; ls -A /tmp")
    assert after.stdout.split()[:2] == ["2", "kept"], after.stdout
    assert "au-restart-test" not in after.stdout.split()[2:]
    restarts = entries(home, "side.restart")
    assert restarts and "OS Up" in restarts[-1]["message"]
    assert not Path(kept).exists()


def test_a_side_that_cannot_be_built_says_why(split: tuple[Path, Path]) -> None:
    home, software = split
    name = str(software).lstrip("/").replace("/", "-")
    vol = json.loads(au(home, "volume", "show", name, "--json").stdout)
    replica = Path(vol["replicas"][vol["session"]["upgrade"]])
    aside = replica.with_name(replica.name + ".aside")
    replica.rename(aside)
    try:
        done = au(home, "restart-upgrade-side")
        assert done.returncode == 30, done.stderr
        assert "the Upgrade Side cannot be built" in done.stderr
        assert f"system layer {software}" in done.stderr
        assert "No such file or directory" in done.stderr
        status = json.loads(au(home, "status", "--json").stdout)
        assert status["partner_state"] == "OS Crashed"
        logged = json.dumps(entries(home, "operation.failed") + entries(home, "step.failed"))
        assert "No such file or directory" in logged
    finally:
        aside.rename(replica)
    assert au(home, "restart-upgrade-side").returncode == 0
    wait_until(lambda: json.loads(au(home, "status", "--json").stdout)["partner_state"]
               == "OS Up", 30, "the side back up")
