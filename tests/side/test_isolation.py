"""The Upgrade Side is isolated: its own replicas, no data volumes, only loopback and the
private link, no way to the host's loopback services; partner state follows it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from activeupgrade.config.model import Config, UpgradeSideSpec, VolumeRole, VolumeSpec
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperatorAction, PartnerState
from activeupgrade.platform.side import namespace, partner, writes
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.store.db import Store

from ..volumes.helpers import act, engine_for, session_config, unmount_under


@pytest.fixture(params=["copy-on-write"])
def split_host(request: pytest.FixtureRequest, tmp_path: Path,  # type: ignore[no-untyped-def]
               needs_root: None):
    # A deep instance folder: the Upgrade Side's init socket is named through its folder.
    home = tmp_path / ("deep-" * 12) / "home"
    assert len(str(home / "run" / "side.sock")) > 107
    sysv, datav = tmp_path / "opt" / "app", tmp_path / "var" / "app"
    sysv.mkdir(parents=True)
    datav.mkdir(parents=True)
    (sysv / "version").write_text("1\n")
    (datav / "secret").write_text("customer data\n")
    cfg = session_config(tmp_path / "configs", [(sysv, "system"), (datav, "data")])
    cfg.write_text(cfg.read_text() + f'[upgrade_side]\noutside = "{request.param}"\n')
    engine, store = engine_for(home, cfg)
    inst = Instance(home)
    adoption.adopt(inst, store, str(sysv), VolumeRole.SYSTEM)
    adoption.adopt(inst, store, str(datav), VolumeRole.DATA)
    act(engine, OperatorAction.SPLIT)
    try:
        yield inst, sysv, datav
        act(engine, OperatorAction.ABORT)
        act(engine, OperatorAction.FINISH)
        store.close()
        release_all(home)
    finally:
        namespace.remove(inst)
        unmount_under(tmp_path)


PROBE = ("import socket\ns=socket.socket()\ns.settimeout(2)\n"
         "try:\n s.connect((%r,%d))\n print('reached')\nexcept OSError:\n print('unreachable')\n")


def release_all(home: Path) -> None:
    """Give back plain directories (bind mounts would outlive the test otherwise)."""
    _, store = engine_for(home)
    for vol in registry.all_volumes(store):
        adoption.release(store, vol)
    store.close()


def session_config_of(inst: Instance, store: Store) -> Config:
    """The volumes of the running session, as the Upgrade Side is built from them."""
    specs = tuple(VolumeSpec(v.path, v.role) for v in registry.all_volumes(store))
    host = namespace.read(inst)
    return Config(volumes=specs, upgrade_side=UpgradeSideSpec(
        host_address=host["host_address"], side_address=host["side_address"]))


def inside(inst: Instance, *argv: str) -> str:
    done = namespace.run(inst, list(argv), timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_files_are_isolated(split_host) -> None:  # type: ignore[no-untyped-def]
    inst, sysv, datav = split_host
    inside(inst, "sh", "-c", f"echo 2 > {sysv}/version; echo new > {sysv}/installed")
    assert (sysv / "version").read_text() == "1\n"
    assert not (sysv / "installed").exists()
    (sysv / "host-only").write_text("x")
    assert "host-only" not in inside(inst, "ls", str(sysv))
    assert inside(inst, "cat", f"{sysv}/version") == "2\n"
    assert inside(inst, "ls", "-A", str(datav)) == ""  # data volumes: empty scratch
    inside(inst, "sh", "-c", f"echo x > {datav}/new")  # writable there, never live
    assert sorted(p.name for p in datav.iterdir()) == ["secret"]
    assert inside(inst, "hostname").strip().endswith("-upgrade")
    pids = inside(inst, "ls", "/proc").split()
    assert str(os.getpid()) not in pids  # the host's processes are invisible


def test_network_is_isolated(split_host) -> None:  # type: ignore[no-untyped-def]
    inst, _, _ = split_host
    rec = namespace.read(inst)
    routes = [r for r in inside(inst, "ip", "route").splitlines() if r.strip()]
    assert routes and all(f"dev {rec['side_link']}" in r for r in routes)
    links = [ln.split()[0].split("@")[0] for ln in inside(inst, "ip", "-br", "link").splitlines()]
    assert sorted(links) == sorted(["lo", rec["side_link"]])
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        assert inside(inst, sys.executable, "-c", PROBE % ("127.0.0.1", port)).strip() == (
            "unreachable")
    # the private link works: the side reaches a listener on the host end of the link
    host_ip = rec["host_address"].split("/")[0]
    with socket.socket() as srv:
        srv.bind((host_ip, 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        assert inside(inst, sys.executable, "-c", PROBE % (host_ip, port)).strip() == "reached"


def test_partner_state_follows_the_side(split_host) -> None:  # type: ignore[no-untyped-def]
    inst, _, _ = split_host
    assert partner.partner_state(inst)[0] is PartnerState.OS_UP
    pid = int(namespace.read(inst)["pid"])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while namespace.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert partner.partner_state(inst)[0] is PartnerState.OS_CRASHED
    namespace.stop(inst)
    assert partner.partner_state(inst)[0] is PartnerState.OS_SHUT_DOWN


def test_restart_keeps_what_was_installed(split_host) -> None:  # type: ignore[no-untyped-def]
    inst, sysv, _ = split_host
    inside(inst, "sh", "-c", f"echo 2 > {sysv}/version")
    old_pid = namespace.read(inst)["pid"]
    namespace.stop(inst, final_state="rebooting")
    assert partner.partner_state(inst)[0] is PartnerState.OS_REBOOTING
    store = Store(inst.db)
    try:
        engine_status = store.get_doc("volumes", registry.all_volumes(store)[0].name)
        session = engine_status["session"]["id"]
        cfg = session_config_of(inst, store)
        namespace.start(inst, store, cfg, session)
    finally:
        store.close()
    assert partner.partner_state(inst)[0] is PartnerState.OS_UP
    assert namespace.read(inst)["pid"] != old_pid
    assert inside(inst, "cat", f"{sysv}/version") == "2\n"
    assert (sysv / "version").read_text() == "1\n"


@pytest.mark.parametrize("split_host", ["read-only"], indirect=True)
def test_read_only_outside_the_volumes(split_host) -> None:  # type: ignore[no-untyped-def]
    inst, sysv, datav = split_host
    for path in ("/etc/au-read-only-test", "/var/log/au-read-only-test"):
        done = namespace.run(inst, ["sh", "-c", f"echo x > {path}"], timeout=30)
        assert done.returncode != 0 and "Read-only file system" in done.stderr, path
    inside(inst, "sh", "-c", f"echo 2 > {sysv}/version; echo t > /tmp/t; echo d > {datav}/d")
    assert inside(inst, "cat", f"{sysv}/version") == "2\n"
    assert writes.written(inst).counts["outside"] == 0


def test_a_recycled_pid_never_leads_into_other_namespaces(  # type: ignore[no-untyped-def]
        split_host) -> None:
    inst, _, _ = split_host
    rec = namespace.read(inst)
    assert rec["userns"] == os.stat(f"/proc/{rec['pid']}/ns/user").st_ino
    # The record's pid now names another process (as if the init ended and its pid was
    # given to a new one): entering refuses instead of joining that process's namespaces.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        namespace.write(inst, {**rec, "pid": stranger.pid})
        done = namespace.run(inst, ["true"], timeout=30)
        assert done.returncode == 125, done.stderr
        assert "no longer the Upgrade Side's init" in done.stderr
    finally:
        stranger.kill()
        stranger.wait()
        namespace.write(inst, rec)
