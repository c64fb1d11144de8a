"""Ctrl-C on a long CLI command (``au check`` whose readiness-check action is a long step
that waits for the test): without a terminal the work is left running and the command
says so (exit 130); on a terminal (a real pseudo-terminal) it asks, and "c" cancels the
check — the running action is killed and the check fails as Interrupted (exit 12) while
the instance stays Idle/Ready; "l" leaves it running."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from activeupgrade.api.client import Client
from activeupgrade.instance import Instance
from tests.support import wait_until

from .conftest import Web


def start(web: Web, *, tty: bool) -> tuple[subprocess.Popen[bytes], int | None]:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # The suite was started in the background by a shell, which ignores SIGINT for
        # it and every child: the command must get Ctrl-C as from a user's terminal.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    env = {**os.environ, "AU_HOME": str(web.home), "TERM": "dumb"}
    argv = [sys.executable, "-m", "activeupgrade", "check"]
    if not tty:
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE), None
    master, slave = pty.openpty()
    child = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                             start_new_session=True)
    os.close(slave)
    return child, master


def read_until(master: int, text: str, timeout: float = 60) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} not shown; the terminal shows: {seen[-2000:]!r}"
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    return seen.decode(errors="replace")


def at_part_one(client: Client) -> bool:
    p = client.status().progress
    return p.text == "part 1 of 4"


def open_gates(web: Web) -> None:
    for part in (1, 2, 3, 4):
        (web.gates / str(part)).write_text("")


def reset_gates(web: Web) -> None:
    for part in (1, 2, 3, 4):
        (web.gates / str(part)).unlink(missing_ok=True)
    web.gates.mkdir(exist_ok=True)


def test_ctrl_c_leaves_or_cancels_the_work(web: Web) -> None:
    if not web.adopted:
        pytest.skip("needs the adopted volume the readiness-check action lies on")
    client = Client.for_instance(Instance(web.home), start=False)
    client.post("/config/loaded", {"path": str(web.home / "configs" / "shop.toml")})
    try:
        # No terminal: left running, said so.
        reset_gates(web)
        child, _ = start(web, tty=False)
        wait_until(lambda: at_part_one(client), 60, "the check at its first part")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert child.returncode == 130, err
        assert b"goes on in the daemon (no terminal to ask" in err, err
        assert client.status().busy
        open_gates(web)
        wait_until(lambda: not client.status().busy, 120, "the check to end")
        assert client.status().error is None

        # A terminal: asked; "l" leaves it running.
        reset_gates(web)
        child, master = start(web, tty=True)
        assert master is not None
        wait_until(lambda: at_part_one(client), 60, "the check at its first part")
        os.killpg(child.pid, signal.SIGINT)
        read_until(master, "Cancel it [c] or leave it running [l]?")
        os.write(master, b"l\n")
        assert child.wait(timeout=60) == 130
        read_until(master, "goes on in the daemon")
        assert client.status().busy
        os.close(master)
        open_gates(web)
        wait_until(lambda: not client.status().busy, 120, "the check to end")

        # A terminal: "c" cancels: the action is killed, the check is Interrupted.
        reset_gates(web)
        child, master = start(web, tty=True)
        assert master is not None
        wait_until(lambda: at_part_one(client), 60, "the check at its first part")
        os.killpg(child.pid, signal.SIGINT)
        read_until(master, "Cancel it [c] or leave it running [l]?")
        os.write(master, b"c\n")
        assert child.wait(timeout=120) == 12
        shown = read_until(master, "au: error:")
        assert "cancelling the readiness check" in shown, shown
        os.close(master)
        s = client.status()
        assert (s.upgrade_state.value, s.operational_state.value) == ("Idle", "Ready")
        assert s.error is not None and s.error["error"] == "Interrupted", s.error
        log = client.get("/log", event="engine.cancel", limit=5, newest=1)
        assert log and "cancel of CheckReadiness requested" in log[-1]["message"]
    finally:
        open_gates(web)
        wait_until(lambda: not client.status().busy, 120, "the instance to be idle")
        client.close()
