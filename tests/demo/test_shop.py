"""The demo shop, its packages, installer and load client, with real processes on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from activeupgrade import proc
from activeupgrade.demo import packages
from activeupgrade.demo.load import LoadClient, ShopClient, verify_orders
from tests.demo.shop_helpers import held_socket, start_activated, wait_healthy


def install(tmp_path: Path, release: packages.Release, prefix: Path) -> dict[str, object]:
    pkg = packages.build(release, tmp_path / "packages")
    installer = packages.copy_installer(tmp_path / "packages")
    done = proc.run([sys.executable, installer, pkg, prefix])
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])["installed"]
    return result


def test_installer_installs_and_replaces_releases(tmp_path: Path) -> None:
    prefix = tmp_path / "opt" / "shop"
    prefix.mkdir(parents=True)
    first = install(tmp_path, packages.RELEASE_1, prefix)
    assert first["version"] == "1.0.0"
    hook = prefix / "bin" / "hook.py"
    assert hook.stat().st_mode & 0o777 == 0o755
    assert hook.read_text().splitlines()[0] == f"#!{sys.executable}"
    (prefix / "log").mkdir()
    (prefix / "log" / "shop.log").write_text("kept\n")
    (prefix / "obsolete.py").write_text("from an old release\n")
    second = install(tmp_path, packages.RELEASE_2, prefix)
    assert second["version"] == "2.0.0"
    assert second["removed"] == ["obsolete.py"]
    assert (prefix / "log" / "shop.log").read_text() == "kept\n"
    assert json.loads((prefix / "release.json").read_text())["features"] == ["order-count"]
    assert not [p for p in prefix.iterdir() if p.name.startswith(".installing")]


def test_hook_records_its_environment(tmp_path: Path) -> None:
    prefix = tmp_path / "shop"
    prefix.mkdir()
    install(tmp_path, packages.RELEASE_1, prefix)
    env = proc.base_env({"ACTIVE_UPGRADE_SIDE": "Upgrade", "ACTIVE_UPGRADE_REQUEST": "Commit"})
    done = proc.run([prefix / "bin" / "hook.py", "ready"], env=env)
    assert "shop release 1.0.0" in done.stdout
    assert "PROGRESS 100" in done.stdout
    entry = json.loads((prefix / "log" / "actions.log").read_text().splitlines()[-1])
    assert entry["kind"] == "ready"
    assert entry["env"]["ACTIVE_UPGRADE_SIDE"] == "Upgrade"
    (prefix / "release.json").unlink()
    failed = proc.run([prefix / "bin" / "hook.py", "ready"], env=env, check=False)
    assert failed.returncode == 1
    assert "release.json is unreadable" in failed.last_stderr_line


def test_handover_on_a_held_socket_loses_nothing(tmp_path: Path) -> None:
    """Release 1 serves; it is stopped and release 2 started on the same held socket while
    the load runs: no request fails and every order is there."""
    prefix, data = tmp_path / "opt" / "shop", tmp_path / "var" / "shop"
    prefix.mkdir(parents=True)
    install(tmp_path, packages.RELEASE_1, prefix)
    sock = held_socket()
    port = sock.getsockname()[1]
    shop = ShopClient("127.0.0.1", port)
    old = start_activated(sock, prefix, data)
    new: subprocess.Popen[bytes] | None = None
    load = LoadClient("127.0.0.1", port, threads=3)
    try:
        wait_healthy(shop)
        assert shop.version() == "1.0.0"
        assert shop.request("GET", "/orders")[0] == 404
        load.start()
        time.sleep(0.5)
        install(tmp_path, packages.RELEASE_2, prefix)
        load.phase = "merge"
        old.send_signal(signal.SIGTERM)
        assert old.wait(10) == 0
        new = start_activated(sock, prefix, data)
        wait_healthy(shop)
        time.sleep(0.5)
        stats = load.stop()
        assert stats.failed == 0, stats.failures
        assert stats.versions.get("1.0.0") and stats.versions.get("2.0.0")
        assert shop.version() == "2.0.0"
        result = verify_orders(shop, load.orders)
        assert result["orders_lost"] == 0
        assert result["orders_written"] > 10
        assert shop.request("GET", "/orders")[1]["count"] == len(load.orders)
        log = (prefix / "log" / "shop.log").read_text()
        assert "socket-activated" in log and "stopped" in log
    finally:
        load.stop()
        for p in (old, new):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        sock.close()


def test_unreachable_shop_counts_failures(tmp_path: Path) -> None:
    sock = held_socket()
    port = sock.getsockname()[1]
    sock.close()
    load = LoadClient("127.0.0.1", port, threads=1)
    load.start()
    time.sleep(0.2)
    stats = load.stop()
    assert stats.sent > 0 and stats.failed == stats.sent
    assert "ConnectionRefused" in stats.failures[0]
