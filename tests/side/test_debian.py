"""The Upgrade Side of a daemon running in a chroot: a real Debian bookworm root.

The daemon, the CLI and every program they run are the chroot's (``tests/side/debian.py``);
the chroot is a plain folder, not a mount point. Shown here:

- ``au exec`` runs in the daemon's root, not the machine's, and the battery of escape
  attempts (``battery.py``) fails there as it does on the host;
- Debian's own packages, unmodified: nginx 1.22.1-9+deb12u9 runs on Production as an
  application service; the newer +deb12u11 is staged with ``au packages stage`` and
  installed inside with ``apt-get install`` and ``dpkg -i``, offline; its maintainer
  scripts succeed (the start of nginx refused by policy-rc.d, the chown of its log folder
  done on a data volume's scratch); ``useradd`` and ``systemctl disable`` work offline;
  Production keeps the old version and sees none of it; the writes outside the volumes are
  listed before the merge; the merge says nginx uses files the upgrade changed and runs
  the new binary (``/proc/PID/exe``, dpkg); an abort brings the old version back.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, wait_until

from .debian import NEW, OLD, SOURCE, Chroot
from .test_escapes import BATTERY

SYSTEM = ("/usr/sbin", "/etc", "/var/lib/dpkg")
DATA = ("/var/log/nginx", "/var/lib/nginx")


@pytest.fixture
def chroot(tmp_path: Path, needs_root: None) -> Iterator[Chroot]:
    c = Chroot(tmp_path)
    try:
        yield c
    finally:
        c.close()


def adopt(c: Chroot) -> None:
    for path in SYSTEM:
        c.au("volume", "adopt", path, "--role", "system")
    for path in DATA:
        c.au("volume", "adopt", path, "--role", "data")


def version(c: Chroot, *, inside: bool = False) -> str:
    argv = ("dpkg-query", "-W", "-f", "${Version}", "nginx")
    done = c.au("exec", "--", *argv) if inside else c.run(*argv, check=True)
    return done.stdout.strip()


def test_exec_runs_in_the_daemons_root_and_escapes_fail(chroot: Chroot) -> None:
    c = chroot
    token = secrets.token_hex(4)
    (c.root / "srv" / f"marker-{token}").write_text("chroot\n")
    (c.root / "var" / "lib" / "app").mkdir(parents=True)
    (c.root / "var" / "lib" / "app" / "secret").write_text("orders\n")
    c.au("volume", "adopt", "/etc", "--role", "system")
    c.au("volume", "adopt", "/var/lib/app", "--role", "data")
    c.au("split")
    # The Upgrade Side is the daemon's root: the chroot's file is there, the machine's
    # root (where this test runs) is not.
    assert c.au("exec", "--", "cat", f"/srv/marker-{token}").stdout == "chroot\n"
    seen = c.au("exec", "--", "ls", "/", check=True).stdout.split()
    # The listing of / inside is the chroot's own, with the bind of this checkout in it.
    assert sorted(seen) == sorted(p.name for p in c.root.iterdir())
    assert SOURCE.parts[1] in seen
    assert not Path(f"/srv/marker-{token}").exists()
    assert c.au("exec", "--", "sh", "-c", "echo $AU_HOME; pwd").stdout == "\n/\n"

    home = Path("/var/lib/activeupgrade")
    vols = json.loads(c.au("volume", "list", "--json").stdout)
    side = json.loads((c.root / str(home / "run/side.json").lstrip("/")).read_text())
    spec: dict[str, Any] = {
        "token": token,
        "write": [p for v in vols for p in v["replicas"].values()]
        + [str(home), str(home / "run")],
        "read": [str(home / "state.db"), str(home / "web-token")],
        "unix": [str(home / "api.sock"), str(home / "run" / "side.sock")],
        "pids": [], "tcp": [], "link_host": side["host_address"].split("/")[0],
        "unmount": ["/etc", "/var/lib/app", str(home), "/"],
        "reveal": [("/var/lib/app", "secret"), (str(home), "state.db")],
        "mount_at": "/srv", "nodes": [], "homes": [str(home)],
        "shared_writes": [f"/var/log/esc-{token}", f"/root/esc-{token}",
                          f"/var/lib/app/new-{token}", f"/etc/esc-{token}"],
    }
    done = c.au("exec", "--", "/usr/bin/python3", str(BATTERY), json.dumps(spec))
    results = json.loads(done.stdout)
    assert len(results) > 15, results
    assert [r for r in results if not r["blocked"]] == []
    for path in spec["shared_writes"]:
        assert not (c.root / path.lstrip("/")).exists(), path
    assert sorted(p.name for p in (c.root / "var/lib/app").iterdir()) == ["secret"]
    writes = json.loads(c.au("side", "writes", "--json").stdout)
    assert {f"/var/log/esc-{token}", f"/root/esc-{token}"} <= {
        w["path"] for w in writes["outside"]}


def nginx_config(c: Chroot, port: int) -> Path:
    site = c.root / "etc/nginx/sites-enabled/default"
    site.unlink()
    (c.root / "etc/nginx/conf.d/test.conf").write_text(
        f"server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok'; }} }}\n")
    cfg = c.root / "root" / "nginx.toml"
    cfg.write_text("".join(f'[[volume]]\npath = "{p}"\nrole = "system"\n\n' for p in SYSTEM)
                   + "".join(f'[[volume]]\npath = "{p}"\nrole = "data"\n\n' for p in DATA)
                   + '[[service]]\nname = "nginx"\n'
                   'command = ["/usr/sbin/nginx", "-g", "daemon off;"]\n'
                   'stop_grace = "5s"\nstart_timeout = "20s"\n\n'
                   f'[service.health]\nkind = "tcp"\ntarget = "127.0.0.1:{port}"\n')
    return cfg


def running_binary(c: Chroot) -> str:
    st = json.loads(c.au("service", "status", "nginx", "--json").stdout)
    return hashlib.sha256(Path(f"/proc/{st['pid']}/exe").read_bytes()).hexdigest()


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_debian_packages_inside_the_upgrade_side(chroot: Chroot) -> None:
    c = chroot
    port = free_port()
    cfg = nginx_config(c, port)
    adopt(c)
    c.au("config", "load", "/root/nginx.toml")
    c.au("service", "start", "nginx")
    old_binary = running_binary(c)
    assert version(c) == OLD
    check = c.au("check", check=False)
    assert "AU-C021" in check.stdout and "nothing is staged" in check.stdout

    staged = json.loads(c.au("packages", "stage", "--update", "nginx", "--json").stdout)
    assert sorted(p["file"] for p in staged["packages"]) == [
        f"nginx-common_{NEW}_all.deb", f"nginx_{NEW}_amd64.deb"]
    report = json.loads(c.au("check", "--json", check=False).stdout)
    staged_check = next(r for r in report["checks"] if r["id"] == "AU-C021")
    assert staged_check["ok"] and "2 package(s) staged for nginx" in staged_check["message"]
    c.au("split")
    assert cfg.exists()

    # Debian's tools, unmodified, offline.
    apt = c.au("exec", "--", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install",
               "-y", "nginx", check=False)
    assert apt.returncode == 0, apt.stdout + apt.stderr
    assert "Need to get 0 B" in apt.stdout
    assert "policy-rc.d denied execution of start" in apt.stdout + apt.stderr
    reinstall = c.au("exec", "--", "dpkg", "-i", f"/var/cache/apt/archives/nginx_{NEW}_amd64.deb",
                     check=False)
    assert reinstall.returncode == 0, reinstall.stdout + reinstall.stderr
    assert version(c, inside=True) == NEW and version(c) == OLD
    assert c.au("exec", "--", "stat", "-c", "%U:%G", "/var/log/nginx").stdout.strip() == \
        "root:adm"
    c.au("exec", "--", "useradd", "--system", "tester")
    assert "tester" in c.au("exec", "--", "getent", "passwd", "tester").stdout
    assert c.run("getent", "passwd", "tester").returncode != 0
    c.au("exec", "--", "systemctl", "disable", "nginx")
    assert c.au("exec", "--", "systemctl", "is-enabled", "nginx", check=False).stdout.strip() \
        == "disabled"
    assert c.run("systemctl", "is-enabled", "nginx").stdout.strip() == "enabled"
    refused = c.au("exec", "--", "systemctl", "start", "nginx", check=False)
    assert refused.returncode != 0
    # Production: still the old nginx, serving; nothing written inside reached it.
    assert running_binary(c) == old_binary
    assert not (c.root / "usr/sbin/policy-rc.d").exists()
    assert not (c.root / "var/log/dpkg.log").exists() or "nginx" not in (
        c.root / "var/log/dpkg.log").read_text()

    writes = json.loads(c.au("side", "writes", "--json").stdout)
    outside = {w["path"] for w in writes["outside"]}
    assert "/var/log/dpkg.log" in outside and "/usr/lib/systemd/system/nginx.service" in outside
    c.au("merge")
    wait_until(lambda: c.au("service", "status", "nginx", "--json", check=False).returncode
               == 0, 30, "nginx running after the merge")
    assert version(c) == NEW
    new_binary = running_binary(c)
    assert new_binary != old_binary
    assert new_binary == file_hash(c.root / "usr/sbin/nginx")
    log = json.loads(c.au("log", "--json").stdout)
    uses = [e for e in log if e["event"] == "side.service-files"]
    assert uses and "/usr/sbin/nginx" in uses[-1]["details"]["files"], uses
    assert not (c.root / "usr/sbin/policy-rc.d").exists()
    c.au("abort", "--yes")
    c.au("finish")
    assert version(c) == OLD
    assert running_binary(c) == old_binary
