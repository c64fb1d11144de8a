"""Stopping the Upgrade Side while its init ends by itself: no ProcessLookupError.

The init may exit at any moment between the check that it runs and the signal sent to it
(seen as ``side.stop: ProcessLookupError`` in about one merge in eight on a loaded machine).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from activeupgrade import proc
from activeupgrade.instance import Instance
from activeupgrade.platform.side import namespace


def _ended_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_alive_is_false_for_a_reaped_and_for_a_zombie_process() -> None:
    assert not proc.alive(_ended_pid())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Not reaped yet: a zombie once it has exited.
        while Path(f"/proc/{zombie.pid}/stat").read_bytes().rpartition(b")")[2].split()[0] != b"Z":
            pass
        assert not proc.alive(zombie.pid)
    finally:
        zombie.wait()
    assert proc.alive(proc.os.getpid())


def test_signal_to_a_process_that_just_ended_is_not_an_error() -> None:
    assert proc.signal_pid(_ended_pid(), 15) is False


def test_stop_when_the_init_ends_between_the_check_and_the_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = Instance(tmp_path / "home")
    inst.ensure()
    dead = _ended_pid()
    namespace.write(inst, {"mode": namespace.NAMESPACES, "pid": dead, "state": "up"})
    # The check still sees it running (it ended right after): the signal finds no process.
    looks = iter([True])
    monkeypatch.setattr(namespace, "alive", lambda pid: next(looks, False))
    namespace.stop(inst)
    assert namespace.read(inst)["state"] == "shut-down"
