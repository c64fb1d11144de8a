"""A battery of escape attempts from inside the Upgrade Side, through ``au exec``.

The host is a real instance (daemon, a supervised service with its keeper and held
socket, a web token) with four volumes (a system and a data volume in the session, one of
each outside it) and a second instance with a data volume of its own; a listener on all
the host's addresses; a device node on disk. From inside (``tests/side/battery.py``) every
attempt must fail: the test fails on any that works, and checks from Production that the
writes made inside (to /run, /tmp, /var/log, /root, /etc, a data volume) reached nothing
there, that the operator sees them listed as written outside the managed volumes before
the merge, and that every ``au exec`` is in the activity log with exit value and duration.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activeupgrade.instance import Instance
from activeupgrade.platform.side import link
from activeupgrade.store.db import Store
from activeupgrade.ui.web.auth import load_or_create_token
from tests.support import HTTPAPP, au, end_instance, free_port, service_toml, volume_toml

from ..volumes.helpers import unmount_under

BATTERY = Path(__file__).with_name("battery.py")
SHARED_BASE = Path("/var/cache/activeupgrade-tests/isolation")
"""Where the second instance lives: outside /tmp, so that its folder is on the host's
root filesystem (seen copy-on-write from inside, and hidden)."""


@dataclass
class Host:
    tmp: Path
    home: Path
    other: Path
    base: Path
    sysv: Path
    sys2: Path
    datav: Path
    data2: Path
    datab: Path
    node: Path
    port: int
    listener: socket.socket
    unix: socket.socket
    """A Unix socket of a Production program outside every volume."""


def ok(home: Path, *args: str, timeout: float = 180) -> str:
    done = au(home, *args, timeout=timeout)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def release_all(home: Path) -> None:
    if not (home / "state.db").exists():
        return
    listed = au(home, "volume", "list", "--json")
    for vol in json.loads(listed.stdout or "[]") if listed.returncode == 0 else []:
        au(home, "volume", "release", vol["name"])


@pytest.fixture
def host(tmp_path: Path, needs_root: None) -> Iterator[Host]:
    base = SHARED_BASE / secrets.token_hex(6)
    h = Host(tmp=tmp_path, home=tmp_path / "home", other=base / "home", base=base,
             sysv=tmp_path / "opt-app", sys2=tmp_path / "opt-tools", datav=tmp_path / "var-app",
             data2=tmp_path / "var-old", datab=base / "var-b", node=base / "null-node",
             port=free_port(), listener=socket.socket(),
             unix=socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    for path, name, text in ((h.sysv, "version", "1\n"), (h.sys2, "tool", "t\n"),
                             (h.datav, "secret", "orders\n"), (h.data2, "secret2", "old\n"),
                             (h.datab, "secretB", "b\n")):
        path.mkdir(parents=True)
        (path / name).write_text(text)
    os.mknod(h.node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    h.listener.bind(("0.0.0.0", 0))
    h.listener.listen(16)
    h.unix.bind(str(base / "host.sock"))
    h.unix.listen(16)
    try:
        for path, role in ((h.sysv, "system"), (h.sys2, "system"), (h.datav, "data"),
                           (h.data2, "data")):
            ok(h.home, "volume", "adopt", str(path), "--role", role)
        ok(h.other, "volume", "adopt", str(h.datab), "--role", "data")
        cfg = tmp_path / "app.toml"
        cfg.write_text(volume_toml(h.sysv, "system") + volume_toml(h.datav, "data")
                       + service_toml(h.port, [sys.executable, str(HTTPAPP), "--version",
                                               "v1"]))
        ok(h.home, "config", "load", str(cfg))
        ok(h.home, "service", "start", "shop")
        load_or_create_token(Instance(h.home))
        yield h
    finally:
        h.listener.close()
        h.unix.close()
        au(h.home, "abort")
        au(h.home, "finish")
        end_instance(h.home)
        release_all(h.home)
        end_instance(h.other, ())
        release_all(h.other)
        au(h.home, "daemon", "--stop")
        au(h.other, "daemon", "--stop")
        unmount_under(tmp_path)
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


def volumes_of(home: Path) -> list[dict[str, Any]]:
    return list(json.loads(ok(home, "volume", "list", "--json")))


def host_ipv4() -> list[str]:
    return sorted({str(a.ip) for name, a in link.host_addresses()
                   if a.version == 4 and not name.startswith("au")})


def spec_for(h: Host, token: str) -> dict[str, Any]:
    home, other = Instance(h.home), Instance(h.other)
    side = json.loads((home.run / "side.json").read_text())
    replicas = []
    for inst in (h.home, h.other):
        for vol in volumes_of(inst):
            replicas += list(vol["replicas"].values())
    keeper = json.loads(ok(h.home, "service", "status", "shop", "--json"))
    daemons = [int(Path(p / "engine.lock").read_text().split()[0]) for p in (h.home, h.other)]
    pids = [os.getpid(), keeper["keeper_pid"], keeper["pid"], *daemons]
    listen = h.listener.getsockname()[1]
    tcp = [("127.0.0.1", h.port), ("127.0.0.1", listen)]
    tcp += [(ip, listen) for ip in host_ipv4() if ip != side["host_address"].split("/")[0]]
    return {
        "token": token,
        "write": [*replicas, str(h.home), str(home.run), str(h.other)],
        "read": [str(home.web_token), str(home.db), str(other.db)],
        "unix": [str(home.socket), str(other.socket),
                 *[str(p) for p in (home.run / "services").glob("*.sock")],
                 str(home.run / "side.sock"), str(h.base / "host.sock")],
        "pids": [(p, cmdline(p)) for p in pids if p],
        "tcp": tcp,
        "link_host": side["host_address"].split("/")[0],
        "unmount": [str(h.sysv), str(h.datav), str(h.data2), str(h.datab), str(h.other),
                    "/", "/proc", "/dev"],
        "reveal": [(str(h.datav), "secret"), (str(h.data2), "secret2"),
                   (str(h.datab), "secretB"), (str(h.other), "state.db")],
        "mount_at": str(h.base),
        "nodes": [str(h.node)],
        "homes": [str(h.home), str(h.other)],
        "shared_writes": [f"/run/au-esc-{token}", f"/tmp/au-esc-{token}",
                          f"/var/log/au-esc-{token}", f"/root/au-esc-{token}",
                          f"/etc/au-esc-{token}", f"{h.datav}/new-{token}",
                          f"{h.sys2}/new-{token}", f"{h.base}/new-{token}"],
    }


BATTERY_POINTS = ("/tmp/reveal", "/tmp/climb")
"""Where the battery mounts or climbs by itself (in the Upgrade Side's own /tmp)."""


def host_mount_points(h: Host, spec: dict[str, Any]) -> set[str]:
    """The build machine's mount points that this test's battery could have made: at or
    under the test's folders or the battery's own places, or its tmpfs (``escape``). Not
    the whole table: other runs on the machine mount and unmount meanwhile (their
    instances' Upgrade Sides, their test hosts), which would be blamed on the battery."""
    places = [str(h.tmp), str(h.base), spec["mount_at"], *BATTERY_POINTS]
    found = set()
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            point, source = left.split()[4], [*right.split(), "", ""][1]
            if source == "escape" or any(point == p or point.startswith(p.rstrip("/") + "/")
                                         for p in places):
                found.add(point)
    return found


def test_every_escape_attempt_fails(host: Host) -> None:
    h = host
    ok(h.home, "split")
    token = secrets.token_hex(4)
    spec = spec_for(h, token)
    mounts_before = host_mount_points(h, spec)
    hostname, domain = socket.gethostname(), Path("/proc/sys/kernel/domainname").read_text()
    done = au(h.home, "exec", "--", sys.executable, str(BATTERY), json.dumps(spec))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) > 40, results
    if os.environ.get("AU_SHOW_BATTERY"):
        print(json.dumps(results, indent=1), file=sys.stderr)
    escaped = [r for r in results if not r["blocked"]]
    assert escaped == [], json.dumps(escaped, indent=1)

    # Production sees nothing of what was written or mounted inside.
    for path in spec["shared_writes"]:
        assert not Path(path).exists(), path
    assert sorted(p.name for p in h.datav.iterdir()) == ["secret"]
    assert sorted(p.name for p in h.sys2.iterdir()) == ["tool"]
    for folder in spec["write"]:
        assert not (Path(folder) / f".escape-{token}").exists(), folder
    assert not any(p.name.startswith("mounted-") for p in h.base.iterdir())
    assert host_mount_points(h, spec) - mounts_before == set()
    assert (socket.gethostname(), Path("/proc/sys/kernel/domainname").read_text()) == (
        hostname, domain)
    assert (h.sysv / "version").read_text() == "1\n"

    # The operator sees, before merging, what was written outside the managed volumes.
    writes = json.loads(ok(h.home, "side", "writes", "--json"))
    listed = {w["path"]: w["change"] for w in writes["outside"]}
    for path in (f"/var/log/au-esc-{token}", f"/root/au-esc-{token}", f"/etc/au-esc-{token}"):
        assert listed.get(path) == "created", (path, listed)
    assert f"{h.datav}/new-{token}" in {w["path"] for w in writes["data"]}
    text = ok(h.home, "side", "writes")
    assert "written outside the managed volumes, not kept" in text
    assert f"/var/log/au-esc-{token}" in text
    plan = json.loads(ok(h.home, "plan", "--json"))
    assert f"/root/au-esc-{token}" in json.dumps(plan["upgrade_side"]["writes"])
    ok(h.home, "merge")
    store = Store(Instance(h.home).db)
    try:
        logged = [json.loads(r["details"]) for r in store.query(
            "SELECT details FROM log WHERE event = 'side.writes' ORDER BY id")]
        execs = [json.loads(r["details"]) for r in store.query(
            "SELECT details FROM log WHERE event = 'side.exec' ORDER BY id")]
    finally:
        store.close()
    assert logged and any(w["path"] == f"/var/log/au-esc-{token}"
                          for w in logged[0]["outside"])
    assert execs and execs[-1]["exit"] == 0 and execs[-1]["duration"] > 0
