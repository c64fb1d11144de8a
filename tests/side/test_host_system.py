"""A whole Debian system's software as volumes of a booted host: ``/usr``, ``/etc`` and
``/var/lib/dpkg`` (everything apt and dpkg write), upgraded with apt inside the Upgrade
Side, as the operator of a real host would.

Recipe NGINX (``tests/host``): nginx 1.22.1-9+deb12u9 runs as ``nginx.service``; the
+deb12u11 security update is in the host's local repository. The tool's own interpreter,
libraries, ``mount`` and systemd live on ``/usr``. Session 1 stages the update, installs it
inside with ``apt-get``, merges (the unit runs the new binary: ``/proc/PID/exe`` and dpkg)
and aborts from Merge: the old version is back everywhere. Session 2 does the same and
commits: after finish both replicas of every volume are verified byte for byte.
"""

from __future__ import annotations

import json

import pytest

from tests.host import NGINX, Host

from .test_host_packages import NEW, OLD, au, file_hash, running_binary, version

SYSTEM = ("/usr", "/etc", "/var/lib/dpkg")
DATA = ("/var/log/nginx", "/var/lib/nginx")
CONFIG = "".join(f'[[volume]]\npath = "{p}"\nrole = "system"\n\n' for p in SYSTEM) + "".join(
    f'[[volume]]\npath = "{p}"\nrole = "data"\n\n' for p in DATA) + """\
[[service]]
name = "nginx"
unit = "nginx.service"
start_timeout = "60s"

[service.health]
kind = "tcp"
target = "127.0.0.1:80"
"""


def upgrade_inside(host: Host) -> None:
    staged = json.loads(au(host, "packages", "stage", "--update", "nginx", "--json"))
    assert f"nginx_{NEW}_amd64.deb" in [p["file"] for p in staged["packages"]]
    au(host, "split")
    update = host.au("exec", "--", "apt-get", "update", timeout=600)
    assert update.returncode == 0, update.stdout + update.stderr
    apt = host.au("exec", "--", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install",
                  "-y", "nginx", timeout=600)
    assert apt.returncode == 0, apt.stdout + apt.stderr
    assert version(host, inside=True) == NEW and version(host) == OLD
    # dpkg's own database inside says the new version; Production's is untouched.
    status = "/var/lib/dpkg/status"
    assert file_hash(host, status) != au(host, "exec", "--", "sha256sum", status).split()[0]


@pytest.mark.debian_host(recipe=NGINX)
def test_usr_etc_and_dpkg_as_volumes_of_a_booted_host(debian_host: Host) -> None:
    host = debian_host
    assert version(host) == OLD
    old_binary = running_binary(host)
    for path in SYSTEM:
        au(host, "volume", "adopt", path, "--role", "system")
    for path in DATA:
        au(host, "volume", "adopt", path, "--role", "data")
    host.write_file("/root/system.toml", CONFIG)
    au(host, "config", "load", "/root/system.toml")
    assert running_binary(host) == old_binary  # adoption left the running system alone

    # Session 1: upgrade, merge onto the new binary, abort from Merge.
    upgrade_inside(host)
    assert running_binary(host) == old_binary  # Production kept serving the old one
    au(host, "merge")
    assert version(host) == NEW
    new_binary = running_binary(host)
    assert new_binary != old_binary and new_binary == file_hash(host, "/usr/sbin/nginx")
    au(host, "abort", "--yes")
    au(host, "finish")
    assert version(host) == OLD and running_binary(host) == old_binary
    assert file_hash(host, "/usr/sbin/nginx") == old_binary

    # Session 2: the same update, committed; both replicas verified byte for byte.
    upgrade_inside(host)
    au(host, "merge")
    au(host, "commit", "--yes")
    au(host, "finish")
    assert version(host) == NEW and running_binary(host) == new_binary
    verified = host.au("volume", "verify", "--full", "--json", timeout=900)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    status = json.loads(au(host, "status", "--json"))
    assert status["duplex"] is True and status["upgrade_state"] == "Idle", status
