"""Debian packages inside the Upgrade Side of a booted Debian host (systemd as PID 1).

A test host (``tests/host``, recipe NGINX: nginx 1.22.1-9+deb12u9 installed and running as
``nginx.service``, the +deb12u11 update in the host's local repository), ``au`` installed in
it as an operator would. System volumes ``/usr/sbin``, ``/etc/nginx``, ``/var/lib/dpkg``; data
volumes ``/var/log/nginx``, ``/var/lib/nginx``. The update is staged on Production with
``au packages stage --update nginx`` and installed inside with ``apt-get install``, offline;
the escape battery runs there too, with the host's systemd, D-Bus and journal sockets among
its targets. The merge restarts the unit on the new binary; the abort brings the old one
back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.host import NGINX, Host

from .test_escapes import BATTERY

OLD, NEW = "1.22.1-9+deb12u9", "1.22.1-9+deb12u11"
CONFIG = """\
[[volume]]
path = "/usr/sbin"
role = "system"

[[volume]]
path = "/etc/nginx"
role = "system"

[[volume]]
path = "/var/lib/dpkg"
role = "system"

[[volume]]
path = "/var/log/nginx"
role = "data"

[[volume]]
path = "/var/lib/nginx"
role = "data"

[[service]]
name = "nginx"
unit = "nginx.service"
start_timeout = "60s"

[service.health]
kind = "tcp"
target = "127.0.0.1:80"
"""


def au(host: Host, *args: str) -> str:
    done = host.au(*args)
    assert done.returncode == 0, f"au {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def version(host: Host, *, inside: bool = False) -> str:
    argv = ["dpkg-query", "-W", "-f", "${Version}", "nginx"]
    return (au(host, "exec", "--", *argv) if inside else
            host.run(argv, check=True).stdout).strip()


def running_binary(host: Host) -> str:
    pid = host.run(["systemctl", "show", "--property=MainPID", "--value", "nginx.service"],
                   check=True).stdout.strip()
    assert pid != "0", "nginx.service is not running"
    exe = host.run(["sha256sum", f"/proc/{pid}/exe"], check=True).stdout.split()[0]
    return exe


def file_hash(host: Host, path: str) -> str:
    """As the host sees it (its live paths are mounts of its own)."""
    return host.run(["sha256sum", path], check=True).stdout.split()[0]


def battery_spec(host: Host, token: str) -> dict[str, Any]:
    home = "/var/lib/activeupgrade"
    vols = json.loads(au(host, "volume", "list", "--json"))
    side = json.loads(host.path(f"{home}/run/side.json").read_text())
    nginx = host.run(["systemctl", "show", "--property=MainPID", "--value", "nginx.service"],
                     check=True).stdout.strip()
    pids = [1, int(nginx)]
    return {
        "token": token,
        "write": [p for v in vols for p in v["replicas"].values()] + [home, f"{home}/run"],
        "read": [f"{home}/state.db"],
        "unix": [f"{home}/api.sock", "/run/systemd/private", "/run/dbus/system_bus_socket",
                 "/run/systemd/journal/socket", "/run/systemd/notify"],
        "pids": [(p, host.run(["cat", f"/proc/{p}/cmdline"], check=True).stdout
                  .replace("\0", " ")) for p in pids],
        "tcp": [("127.0.0.1", 80)], "link_host": side["host_address"].split("/")[0],
        "unmount": ["/etc/nginx", "/usr/sbin", "/var/log/nginx", home, "/"],
        "reveal": [("/var/log/nginx", "access.log"), (home, "state.db")],
        "mount_at": "/srv", "nodes": [], "homes": [home],
        "shared_writes": [f"/var/log/esc-{token}", f"/root/esc-{token}", f"/run/esc-{token}",
                          f"/var/log/nginx/esc-{token}"],
    }


@pytest.mark.debian_host(recipe=NGINX)
def test_apt_inside_the_upgrade_side_of_a_booted_host(debian_host: Host) -> None:
    host = debian_host
    assert version(host) == OLD
    old_binary = running_binary(host)
    for path in ("/usr/sbin", "/etc/nginx", "/var/lib/dpkg"):
        au(host, "volume", "adopt", path, "--role", "system")
    for path in ("/var/log/nginx", "/var/lib/nginx"):
        au(host, "volume", "adopt", path, "--role", "data")
    host.write_file("/root/nginx.toml", CONFIG)
    au(host, "config", "load", "/root/nginx.toml")
    staged = json.loads(au(host, "packages", "stage", "--update", "nginx", "--json"))
    assert sorted(p["file"] for p in staged["packages"]) == [
        f"nginx-common_{NEW}_all.deb", f"nginx_{NEW}_amd64.deb"]
    au(host, "split")

    # apt's own sandbox user (_apt) fetches from the host's local repository inside.
    update = host.au("exec", "--", "apt-get", "update", timeout=600)
    assert update.returncode == 0, update.stdout + update.stderr
    assert "unsandboxed" not in update.stdout + update.stderr
    apt = host.au("exec", "--", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install",
                  "-y", "nginx", timeout=600)
    assert apt.returncode == 0, apt.stdout + apt.stderr
    assert "Need to get 0 B" in apt.stdout
    assert "refused on the Upgrade Side" in apt.stdout + apt.stderr
    assert version(host, inside=True) == NEW and version(host) == OLD
    assert running_binary(host) == old_binary  # Production: untouched, still serving
    assert host.run(["test", "-e", "/usr/sbin/policy-rc.d"]).returncode != 0

    token = "b00tedh0st"
    host.write_file("/root/battery.py", BATTERY.read_text())
    done = host.au("exec", "--", "python3", "/root/battery.py",
                   json.dumps(battery_spec(host, token)))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r for r in results if not r["blocked"]] == []
    for path in (f"/var/log/esc-{token}", f"/root/esc-{token}", f"/run/esc-{token}",
                 f"/var/log/nginx/esc-{token}"):
        assert host.run(["test", "-e", path]).returncode != 0, path

    writes = json.loads(au(host, "side", "writes", "--json"))
    outside = {w["path"] for w in writes["outside"]}
    assert {"/var/log/dpkg.log", f"/var/log/esc-{token}"} <= outside

    au(host, "merge")
    assert version(host) == NEW
    new_binary = running_binary(host)
    assert new_binary != old_binary and new_binary == file_hash(host, "/usr/sbin/nginx")
    log = json.loads(au(host, "log", "--json"))
    uses = [e for e in log if e["event"] == "side.service-files"]
    assert uses and "/usr/sbin/nginx" in uses[-1]["details"]["files"], uses[-1]["details"]
    au(host, "abort", "--yes")
    au(host, "finish")
    assert version(host) == OLD
    assert running_binary(host) == old_binary
    assert Path(BATTERY).exists()
