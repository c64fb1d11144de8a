"""The systemd backend against a real systemd as PID 1: a booted Debian test host.

Inside one host (``tests/host``, recipe NGINX) two services given as systemd units — a small
HTTP application of ours (``hello.service``, its software in ``/opt/hello``) and Debian's
``nginx.service`` — go through sessions driven with ``au`` inside the host, as an operator
would. System volumes: ``/opt/hello``, ``/etc/nginx`` and ``/etc/systemd/system`` (where
the links that enable units live). What SPEC §3 and §5 say is checked with systemd's own
answers: at split nothing restarts and Production's startup types stay (its unit folder
replica is untouched) while the Upgrade Side's copy has them disabled; at merge each unit is
stopped and started again (a new main pid) on the upgraded software, enabled again; abort
from merge brings back the original software; abort from split restarts nothing.

The tests share the host and run in order; each starts from Idle and ends in Idle.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.host import NGINX, Host
from tests.host.fixtures import booted_host

HELLO = """\
import http.server
import os

# Read once: a restart shows new ones (the software's version, the unit file's setting).
VERSION = open("/opt/hello/VERSION").read().strip() + " " + os.environ["HELLO_NOTE"]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = VERSION.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.HTTPServer(("127.0.0.1", 8081), Handler).serve_forever()
"""
UNIT = """\
[Unit]
Description=A small HTTP application (test)

[Service]
Environment=HELLO_NOTE=unit1
ExecStart=/usr/bin/python3 /opt/hello/hello.py

[Install]
WantedBy=multi-user.target
"""
CONFIG = """\
description = "hello and nginx as systemd units"

[[volume]]
path = "/opt/hello"
role = "system"

[[volume]]
path = "/etc/nginx"
role = "system"

[[volume]]
path = "/etc/systemd/system"
role = "system"

[[service]]
name = "hello"
unit = "hello.service"
start_timeout = "60s"

[service.health]
kind = "http"
target = "http://127.0.0.1:8081/"

[[service]]
name = "nginx"
unit = "nginx.service"
start_timeout = "60s"

[service.health]
kind = "http"
target = "http://127.0.0.1:80/"
"""
NGINX_VERSION = "/etc/nginx/conf.d/version.conf"
WANTS = "/etc/systemd/system/multi-user.target.wants"
UNITS = ("hello.service", "nginx.service")
GET = ("import sys, urllib.request as u; r = u.urlopen(sys.argv[1], timeout=10); "
       "print(r.headers.get('X-Version', ''), r.read().decode())")


def au(host: Host, *args: str) -> str:
    done = host.au(*args)
    assert done.returncode == 0, f"au {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def get(host: Host, url: str) -> str:
    """What ``url`` answers inside the host (nginx: its X-Version header; hello: its body)."""
    done = host.run(["python3", "-c", GET, url], check=True)
    return done.stdout.strip()


def main_pids(host: Host) -> dict[str, int]:
    out = {}
    for unit in UNITS:
        pid = host.run(["systemctl", "show", "--property=MainPID", "--value", unit], check=True)
        out[unit] = int(pid.stdout)
    assert all(out.values()), f"a unit is not running: {out}"
    return out


def enabled(host: Host) -> dict[str, str]:
    """Production's startup types as the host's systemd answers them."""
    return {u: host.run(["systemctl", "is-enabled", u]).stdout.strip() for u in UNITS}


def upgrade_side_links(host: Host) -> set[str]:
    """The enablement links the Upgrade Side sees in its unit folder."""
    done = host.au("exec", "--", "ls", WANTS)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def replica_of(host: Host, path: str, which: str) -> Path:
    """A replica folder of a volume (``which``: "live" or "other") on the host's disk."""
    [vol] = [v for v in json.loads(au(host, "volume", "list", "--json"))
             if v["path"] == path]
    live = vol["live"]
    letter = live if which == "live" else ("b" if live == "a" else "a")
    if letter == "a":
        # replica a is the original directory itself (bound at its replica folder inside
        # the host only): on the host's disk it is the path
        return host.path(path)
    return host.path(vol["replicas"][letter])


def versions(host: Host) -> tuple[str, str]:
    """hello's version and unit setting ("2 unit2"), nginx's configured version."""
    return get(host, "http://127.0.0.1:8081/"), get(host, "http://127.0.0.1/").split()[0]


def install_inside(host: Host, version: str) -> None:
    """The "upgrade", written inside the Upgrade Side: new software, a changed unit file
    (systemd must load it again before the start at merge), nginx's configuration."""
    au(host, "exec", "--", "sed", "-i", f"s/.*/{version}/", "/opt/hello/VERSION")
    au(host, "exec", "--", "sed", "-i", f"s/HELLO_NOTE=.*/HELLO_NOTE=unit{version}/",
       "/etc/systemd/system/hello.service")
    au(host, "exec", "--", "sed", "-i", f"s/X-Version .*;/X-Version {version} always;/",
       NGINX_VERSION)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    with booted_host(NGINX, tmp_path_factory.mktemp("systemd-host")) as h:
        h.write_file("/opt/hello/hello.py", HELLO)
        h.write_file("/opt/hello/VERSION", "1\n")
        h.write_file("/etc/systemd/system/hello.service", UNIT)
        h.write_file(NGINX_VERSION, "add_header X-Version 1 always;\n")
        h.write_file("/etc/activeupgrade/configs/app.toml", CONFIG)
        h.run(["systemctl", "daemon-reload"], check=True)
        h.run(["systemctl", "enable", "--now", "hello.service"], check=True)
        h.run(["systemctl", "reload-or-restart", "nginx.service"], check=True)
        for path in ("/opt/hello", "/etc/nginx", "/etc/systemd/system"):
            au(h, "volume", "adopt", path, "--role", "system")
        au(h, "config", "load", "app")
        yield h


def idle(host: Host) -> None:
    st = json.loads(au(host, "status", "--json"))
    assert (st["upgrade_state"], st["operational_state"]) == ("Idle", "Ready"), st


def test_backend_is_systemd(host: Host) -> None:
    rows = {r["name"]: r for r in json.loads(au(host, "service", "list", "--json"))}
    pids = main_pids(host)
    for name, unit in (("hello", "hello.service"), ("nginx", "nginx.service")):
        assert rows[name]["backend"] == "systemd"
        assert rows[name]["running"] and rows[name]["enabled"], rows[name]
        assert rows[name]["pid"] == pids[unit]
    assert "READY" in au(host, "check")


def test_split_merge_commit(host: Host) -> None:
    idle(host)
    assert versions(host) == ("1 unit1", "1")
    before = main_pids(host)
    links_a = replica_of(host, "/etc/systemd/system", "live") / "multi-user.target.wants"

    au(host, "split")
    # Production: nothing restarted, startup types untouched (systemd's answer and the
    # links in the live replica); the Upgrade Side's copy has both units disabled.
    assert main_pids(host) == before
    assert enabled(host) == {u: "enabled" for u in UNITS}
    assert {p.name for p in links_a.iterdir()} >= set(UNITS)
    assert not upgrade_side_links(host) & set(UNITS)

    install_inside(host, "2")
    assert versions(host) == ("1 unit1", "1")  # Production still serves the original

    au(host, "merge")
    after = main_pids(host)
    assert all(after[u] != before[u] for u in UNITS), (before, after)  # restarted
    assert versions(host) == ("2 unit2", "2")  # on the upgraded software and unit file
    assert enabled(host) == {u: "enabled" for u in UNITS}  # restored on the upgraded side

    au(host, "commit", "--yes")
    au(host, "finish")
    idle(host)
    assert versions(host) == ("2 unit2", "2")
    assert enabled(host) == {u: "enabled" for u in UNITS}
    # Both replicas of the unit folder enable the units again (the old one resynced).
    for which in ("live", "other"):
        wants = replica_of(host, "/etc/systemd/system", which) / "multi-user.target.wants"
        assert {p.name for p in wants.iterdir()} >= set(UNITS), which


def test_abort_from_merge(host: Host) -> None:
    idle(host)
    start = versions(host)
    au(host, "split")
    install_inside(host, "3")
    au(host, "merge")
    merged = main_pids(host)
    assert versions(host) == ("3 unit3", "3")

    au(host, "abort", "--yes")
    back = main_pids(host)
    assert all(back[u] != merged[u] for u in UNITS)  # restarted on the original software
    assert versions(host) == start
    assert enabled(host) == {u: "enabled" for u in UNITS}
    au(host, "finish")
    idle(host)
    assert versions(host) == start
    assert host.run(["cat", "/opt/hello/VERSION"]).stdout.strip() == start[0].split()[0]


def test_abort_from_split_restarts_nothing(host: Host) -> None:
    idle(host)
    start, pids = versions(host), main_pids(host)
    au(host, "split")
    install_inside(host, "4")
    assert not upgrade_side_links(host) & set(UNITS)
    au(host, "abort", "--yes")
    au(host, "finish")
    idle(host)
    assert main_pids(host) == pids
    assert versions(host) == start
    assert enabled(host) == {u: "enabled" for u in UNITS}

