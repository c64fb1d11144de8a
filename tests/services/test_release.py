"""``au service stop NAME --release`` through the CLI entry point: the keeper ends and the
port closes; refused while a session is between split and finish."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.instance import Instance
from activeupgrade.platform.services.supervisor import NAMESPACE
from activeupgrade.store.db import Store
from tests.support import (
    DIRECTORY_SIDE,
    au,
    end_instance,
    free_port,
    port_open,
    service_toml,
    software_folder,
    volume_toml,
)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    home = tmp_path / "home"
    software = software_folder(tmp_path)
    port = free_port()
    cfg = tmp_path / "shop.toml"
    cfg.write_text(volume_toml(software) + service_toml(
        port, [sys.executable, f"{software}/httpapp.py", "--version", "v1"]) + DIRECTORY_SIDE)
    r = au(home, "volume", "adopt", str(software), "--role", "system")
    assert r.returncode == 0, r.stderr
    r = au(home, "config", "load", str(cfg))
    assert r.returncode == 0, r.stderr
    yield home, software, port
    status = json.loads(au(home, "status", "--json").stdout or "{}")
    if status.get("upgrade_state") not in ("Idle", None):
        au(home, "abort")
        au(home, "finish")
    au(home, "volume", "release", str(software))
    end_instance(home)


def test_release_refused_in_session_then_closes_the_port(
    host: tuple[Path, Path, int],
) -> None:
    home, _, port = host
    r = au(home, "service", "start", "shop")
    assert r.returncode == 0, r.stderr
    keeper_pid = json.loads(au(home, "service", "status", "shop", "--json").stdout)["keeper_pid"]
    assert keeper_pid > 0

    r = au(home, "split")
    assert r.returncode == 0, r.stderr
    r = au(home, "service", "stop", "shop", "--release")
    assert r.returncode == 4, r.stderr
    assert "`service-release` is not allowed in Split / Ready" in r.stderr
    assert "hint:" in r.stderr and "au finish" in r.stderr and "carry clients" in r.stderr
    st = json.loads(au(home, "service", "status", "shop", "--json").stdout)
    assert st["running"] and st["keeper_pid"] == keeper_pid
    assert port_open(port)

    for action in ("abort", "finish"):
        r = au(home, action)
        assert r.returncode == 0, f"au {action}: {r.stderr}"
    status = json.loads(au(home, "status", "--json").stdout)
    assert status["upgrade_state"] == "Idle", status

    # A plain stop keeps the socket held; --release then ends the keeper and closes it.
    r = au(home, "service", "stop", "shop")
    assert r.returncode == 0 and "sockets stay held" in r.stdout, r.stderr
    assert port_open(port)
    r = au(home, "service", "stop", "shop", "--release")
    assert r.returncode == 0, r.stderr
    assert "keeper ended and its listening sockets are closed" in r.stdout
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))
    st = json.loads(au(home, "service", "status", "shop", "--json").stdout)
    assert not st["running"] and not st.get("keeper_pid") and "no keeper" in st["detail"]
    inst = Instance(home)
    store = Store(inst.db)
    try:
        assert store.get_doc(NAMESPACE, "shop") is None
    finally:
        store.close()
