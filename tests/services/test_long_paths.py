"""A deep ``AU_HOME``: the daemon's API socket, the keeper's control socket and a service's
Unix listening socket lie beyond the 107 bytes of a Unix socket path, and all still work
end to end through the CLI entry point."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from activeupgrade.instance import UNIX_PATH_MAX, unix_path
from tests.support import HTTPAPP, au, end_instance, new_instance, volume_toml

SERVICE = """
[[service]]
name = "shop"
command = ["{python}", "{app}", "--version", "deep"]
stop_grace = "5s"
start_timeout = "20s"

[[service.socket]]
name = "http"
listen = "{listen}"

[service.health]
kind = "command"
argv = ["{python}", "{probe}", "{listen}"]
timeout = "5s"
"""

PROBE = """
import socket, sys
from activeupgrade.instance import unix_path
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.settimeout(4)
    s.connect(unix_path(sys.argv[1]))
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    sys.exit(0 if s.recv(100).startswith(b"HTTP/1.0 200") else 1)
"""


def get_version(path: Path) -> str:
    """``GET /`` over the service's Unix socket; returns the body."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(unix_path(path))
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode().partition("\r\n\r\n")[2]


def test_deep_home_daemon_keeper_and_unix_service(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    home = deep / "home"
    assert len(str(home)) > 120
    listen = home / "run" / "shop-http.sock"
    for long_path in (home / "api.sock", home / "run" / "services" / "shop.sock", listen):
        assert len(str(long_path).encode()) > UNIX_PATH_MAX
    (tmp_path / "opt").mkdir()
    cfg = tmp_path / "shop.toml"
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    cfg.write_text(volume_toml(tmp_path / "opt") + SERVICE.format(
        python=sys.executable, app=HTTPAPP, listen=listen, probe=probe))
    try:
        new_instance(home)
        r = au(home, "config", "load", str(cfg))
        assert r.returncode == 0, r.stderr
        r = au(home, "status", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["operational_state"] == "Ready"
        assert (home / "api.sock").is_socket()

        r = au(home, "service", "start", "shop")
        assert r.returncode == 0 and "started" in r.stdout, r.stderr
        st = json.loads(au(home, "service", "status", "shop", "--json").stdout)
        assert st["running"] and st["healthy"] and st["keeper_pid"] > 0
        assert st["sockets"] == [{"name": "http", "listen": str(listen), "fd": 3}]
        assert (home / "run" / "services" / "shop.sock").is_socket()
        assert listen.is_socket()
        # The raw path really is out of reach; named through its folder it answers.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s, \
                pytest.raises(OSError, match="too long"):
            s.connect(str(listen))
        assert get_version(listen).startswith("deep ")

        r = au(home, "service", "stop", "shop")
        assert r.returncode == 0 and "sockets stay held" in r.stdout, r.stderr
        assert au(home, "service", "status", "shop").returncode == 40  # ServiceError: not running
        assert listen.is_socket()  # still held by the keeper across the stop
        r = au(home, "service", "stop", "shop", "--release")
        assert r.returncode == 0 and "keeper ended" in r.stdout, r.stderr
        assert not listen.exists() and not (home / "run" / "services" / "shop.sock").exists()
    finally:
        end_instance(home)
