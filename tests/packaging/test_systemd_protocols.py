"""The daemon's systemd protocols, spoken to real datagram sockets: ``sd_notify`` (READY=1
once the API socket answers, STOPPING=1 on SIGTERM, after which the stop is still logged)
and the journal's native protocol (every field, a value with newlines in the binary form).
The booted-host test (``test_deb.py``) checks the same against the real systemd."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

from activeupgrade.daemon import journal_fields
from activeupgrade.systemd import Journal, encode, notify
from tests.support import au, new_instance


def parse_native(data: bytes) -> dict[str, str]:
    """The journal's native format back into fields (as journald reads it)."""
    fields: dict[str, str] = {}
    while data:
        line, _, rest = data.partition(b"\n")
        if b"=" in line:
            name, _, value = line.partition(b"=")
            fields[name.decode()] = value.decode()
            data = rest
        else:
            size = struct.unpack("<Q", rest[:8])[0]
            fields[line.decode()] = rest[8:8 + size].decode()
            assert rest[8 + size:9 + size] == b"\n"
            data = rest[9 + size:]
    return fields


def datagram_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(60)
    return sock


def test_notify_ready_and_stopping_and_the_stop_is_logged(tmp_path: Path) -> None:
    home = new_instance(tmp_path / "home")
    listener = datagram_socket(tmp_path / "notify.sock")
    env = {**os.environ, "AU_HOME": str(home), "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    daemon = subprocess.Popen([sys.executable, "-m", "activeupgrade", "daemon"], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        ready = listener.recv(4096).decode()
        assert "READY=1" in ready.splitlines() and f"MAINPID={daemon.pid}" in ready, ready
        # Ready means the API answers.
        assert au(home, "status", "--json").returncode == 0
        daemon.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in listener.recv(4096).decode().splitlines()
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        listener.close()
    assert not (home / "api.sock").exists()
    # (`au log` starts a daemon again: its start is the last entry; it is stopped after)
    try:
        log = json.loads(au(home, "log", "--json", "--event", "daemon.").stdout)
    finally:
        au(home, "daemon", "--stop")
    assert [e["event"] for e in log] == ["daemon.start", "daemon.stop", "daemon.start"], log


def test_notify_without_a_manager_does_nothing(tmp_path: Path) -> None:
    assert notify("READY=1", environ={}) is False
    assert notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "none")}) is False
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"au-test-{os.getpid()}-{tmp_path.name}"
    abstract.bind("\0" + name)
    abstract.settimeout(10)
    try:
        assert notify("READY=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert abstract.recv(100) == b"READY=1"
    finally:
        abstract.close()


def test_journal_entries_carry_the_activity_log_fields(tmp_path: Path) -> None:
    entry = {"id": 42, "parent": 7, "session": "s-1", "side": "Upgrade", "state": "Split",
             "request": "ExecuteSplit", "severity": "error", "event": "request.broken",
             "message": "ExecuteSplit is Broken", "details": {
                 "step": "side.start", "error": {"error": "SideError", "hint": "a\nb"},
                 "seconds": 1.5}}
    fields = journal_fields(entry, "/var/lib/activeupgrade")
    assert fields["PRIORITY"] == "3" and fields["AU_EVENT"] == "request.broken"
    assert fields["AU_PARENT"] == "7" and fields["AU_DETAIL_STEP"] == "side.start"
    sink = datagram_socket(tmp_path / "journal.sock")
    journal = Journal(str(tmp_path / "journal.sock"))
    try:
        assert journal.send({**fields, "AU_NOTE": "two\nlines"})
        got = parse_native(sink.recv(1 << 20))
    finally:
        journal.close()
        sink.close()
    assert got["SYSLOG_IDENTIFIER"] == "activeupgrade"
    assert got["MESSAGE"] == "ExecuteSplit is Broken" and got["AU_NOTE"] == "two\nlines"
    assert json.loads(got["AU_DETAILS"])["error"]["error"] == "SideError"
    assert got["AU_SESSION"] == "s-1" and got["AU_ENTRY"] == "42"
    assert not Journal(str(tmp_path / "absent.sock")).send({"MESSAGE": "x"})
    assert encode({"A": "1"}) == b"A=1\n"
