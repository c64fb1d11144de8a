"""Crash safety: the daemon is killed with SIGKILL at every step boundary of a
split → merge → commit → finish session and of a split → abort → finish session.

For each boundary the daemon is started with the ``AU_FAULT_PAUSE`` hook, which makes it
stop at that boundary; the test then kills it with SIGKILL, starts a new daemon, and checks
that the state is consistent (Broken "interrupted at/after step X"), that Retry (or Abort)
brings the session to its end, and that every file is as expected: the upgraded version
live after commit, the original after abort, data written during the session kept, and the
replicas identical.
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

from activeupgrade.instance import Instance as AUInstance
from activeupgrade.platform.side import namespace
from tests.volumes.helpers import unmount_under

pytestmark = pytest.mark.usefixtures("needs_root")

COMMIT_SESSION = ("split", "merge", "commit", "finish")
ABORT_SESSION = ("split", "abort", "finish")
REQUESTS_OF = {
    "split": ("PrepareSplit", "ExecuteSplit"),
    "merge": ("PrepareMerge", "ExecuteMerge"),
    "commit": ("Commit",),
    "abort": ("Abort",),
    "finish": ("Finish",),
}


class Instance:
    def __init__(self, home: Path) -> None:
        self.home = home

    def au(self, *args: str, fault: str = "", check: bool = True) -> subprocess.CompletedProcess[
        str
    ]:
        env = {k: v for k, v in os.environ.items() if k != "AU_FAULT_PAUSE"}
        env["AU_HOME"] = str(self.home)
        if fault:
            env["AU_FAULT_PAUSE"] = fault
        if args[:1] in (("commit",), ("abort",)):
            args = (*args, "--yes")  # no terminal to confirm on
        r = subprocess.run(
            [sys.executable, "-m", "activeupgrade", *args], capture_output=True, text=True,
            env=env, timeout=300, stdin=subprocess.DEVNULL,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"au {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def status(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.au("status", "--json").stdout)
        return data

    def stop_daemon(self) -> None:
        self.au("daemon", "--stop", check=False)
        deadline = time.monotonic() + 20
        while (self.home / "api.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def daemon_pid(self) -> int:
        return int((self.home / "engine.lock").read_text().split()[0])


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Instance, Path, Path]]:
    system = tmp_path / "opt" / "app"
    data = tmp_path / "var" / "app"
    system.mkdir(parents=True)
    data.mkdir(parents=True)
    (system / "version").write_text("1\n")
    (system / "bin").mkdir()
    for i in range(50):
        (system / "bin" / f"tool{i}").write_text(f"tool {i}\n" * 100)
    (data / "orders").write_text("")
    inst = Instance(tmp_path / "home")
    inst.au("volume", "adopt", str(system), "--role", "system")
    inst.au("volume", "adopt", str(data), "--role", "data")
    try:
        yield inst, system, data
    finally:
        # Leave nothing behind even when the test failed: end the session, release the
        # volumes, stop the daemon and the Upgrade Side, unmount what is left.
        st = json.loads(inst.au("status", "--json", check=False).stdout or "{}")
        if st.get("upgrade_state", "Idle") != "Idle":
            if "abort" in st.get("allowed_actions", []):
                inst.au("abort", check=False)
            inst.au("finish", check=False)
        for path in (system, data):
            inst.au("volume", "release", str(path), check=False)
        inst.stop_daemon()
        namespace.remove(AUInstance(inst.home))
        unmount_under(tmp_path)


def boundaries(inst: Instance, actions: tuple[str, ...]) -> list[str]:
    from activeupgrade.api.client import Client

    client = Client.for_instance(AUInstance(inst.home))
    steps = client.get("/steps")
    client.close()
    out = []
    for action in actions:
        for request in REQUESTS_OF[action]:
            for step in steps[request]:
                out += [f"{request}/{step['name']}/begin", f"{request}/{step['name']}/end"]
    return out


def drive(inst: Instance, actions: tuple[str, ...], fault: str, between: dict[str, object]) -> str:
    """Run ``actions`` with the fault hook; kill the daemon when it pauses. Returns the
    action that was interrupted ("" if the boundary was never reached)."""
    inst.stop_daemon()
    marker = inst.home / "run" / "paused"
    for action in actions:
        hook = between.get(action)
        if callable(hook):
            hook()
        inst.au(action, "--no-wait", fault=fault)
        while True:
            if marker.exists():
                assert marker.read_text() == fault
                os.kill(inst.daemon_pid(), signal.SIGKILL)
                time.sleep(0.2)
                marker.unlink()
                (inst.home / "api.sock").unlink(missing_ok=True)
                return action
            st = json.loads(inst.au("status", "--json", fault=fault).stdout)
            if st["operational_state"] != "Busy" and st.get("action") == action:
                assert st["operational_state"] == "Ready", st["reason"]
                break
            time.sleep(0.05)
    return ""


def finish_session(inst: Instance, actions: tuple[str, ...], interrupted: str,
                   between: dict[str, object], recovery: str) -> None:
    st = inst.status()
    assert st["operational_state"] == "Broken", st
    reason = str(st["reason"])
    assert reason.startswith("interrupted "), reason
    inst.au(recovery)
    if recovery == "abort":
        inst.au("finish")
        return
    rest = actions[actions.index(interrupted) + 1 :]
    for action in rest:
        hook = between.get(action)
        if callable(hook):
            hook()
        inst.au(action)


def test_kill_at_every_step_boundary_of_a_commit_session(
    setup: tuple[Instance, Path, Path],
) -> None:
    inst, system, data = setup
    points = boundaries(inst, COMMIT_SESSION)
    assert len(points) >= 16, points
    version = 1
    covered = []
    for point in points:
        target = version + 1
        orders_before = (data / "orders").read_text()

        def install(target: int = target) -> None:
            inst.au("exec", "--", "/bin/sh", "-c", f"echo {target} > {system / 'version'}")
            with open(data / "orders", "a") as fh:
                fh.write(f"order during session {target}\n")

        between: dict[str, object] = {"merge": install}
        interrupted = drive(inst, COMMIT_SESSION, point, between)
        assert interrupted, f"boundary {point} was never reached"
        finish_session(inst, COMMIT_SESSION, interrupted, between, "retry")
        st = inst.status()
        assert st["upgrade_state"] == "Idle" and st["operational_state"] == "Ready", st
        assert (system / "version").read_text() == f"{target}\n", point
        assert (data / "orders").read_text().startswith(orders_before)
        assert f"order during session {target}" in (data / "orders").read_text()
        inst.au("volume", "verify")
        version = target
        covered.append(point)
    assert covered == points


def test_kill_at_every_step_boundary_of_an_abort_session(
    setup: tuple[Instance, Path, Path],
) -> None:
    inst, system, data = setup
    points = boundaries(inst, ABORT_SESSION)
    for n, point in enumerate(points):
        def write_data(n: int = n) -> None:
            with open(data / "orders", "a") as fh:
                fh.write(f"order {n}\n")
            inst.au("exec", "--", "/bin/cp", "/etc/hostname", str(system / "version"))

        between: dict[str, object] = {"abort": write_data}
        interrupted = drive(inst, ABORT_SESSION, point, between)
        assert interrupted, f"boundary {point} was never reached"
        st = inst.status()
        recovery = "abort" if "abort" in st["allowed_actions"] else "retry"  # type: ignore[operator]
        finish_session(inst, ABORT_SESSION, interrupted, between, recovery)
        st = inst.status()
        assert st["upgrade_state"] == "Idle" and st["operational_state"] == "Ready", st
        assert (system / "version").read_text() == "1\n", point
        if interrupted != "split":
            assert f"order {n}\n" in (data / "orders").read_text()
        inst.au("volume", "verify")
