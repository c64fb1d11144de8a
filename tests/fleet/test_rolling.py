"""A rolling active upgrade of five booted Debian hosts through Ansible over SSH.

Five test hosts (``tests/host``, recipe FLEET: nginx 1.22.1-9+deb12u9 running, the
+deb12u11 update in each host's local repository, an SSH server), booted in parallel, each
in a network namespace of its own linked to a controller namespace where
``ansible-playbook`` runs (``network.py``). Each host was prepared as an operator would
(``au volume adopt`` of ``/usr/sbin``, ``/etc/nginx``, ``/var/lib/dpkg`` as system volumes,
``/var/log/nginx`` and ``/var/lib/nginx`` as data, ``au config load`` with the nginx unit
as the application service); its nginx serves a health endpoint on 127.0.0.1:8081, which
answers 503 on the third host.

The collection's playbook (``activeupgrade.fleet.rolling_upgrade``) reaches them over SSH
with batches of 1, 2 and 2 hosts (``serial``) and ``max_fail_percentage: 0``: h1 and h2 are
upgraded and committed; h3 fails its health gate after the merge, is aborted (its
original nginx back) and stops the rollout; h4 and h5 are left untouched. The summary
callback prints the per-host table and writes it as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activeupgrade import proc
from tests.fleet.network import FleetNetwork
from tests.fleet.playbook import Ansible, installed_collection
from tests.host import FLEET, Host
from tests.host.fixtures import host_problem
from tests.support import cannot_run, wait_until

SIZE = 5
BAD = 3
"""The host whose health gate fails."""
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
HEALTH = """\
server {
    listen 127.0.0.1:8081;
    location = /health { return %d "%s\\n"; }
}
"""


@dataclass
class Fleet:
    hosts: list[Host]
    network: FleetNetwork
    ansible: Ansible
    inventory: Path
    workdir: Path


def au_ok(host: Host, *args: str) -> str:
    done = host.au(*args, timeout=600)
    assert done.returncode == 0, f"{host.name}: au {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def nginx_version(host: Host) -> str:
    return host.run(["dpkg-query", "-W", "-f", "${Version}", "nginx"], check=True).stdout


def running_nginx(host: Host) -> str:
    """The sha256 of the binary nginx.service's main process runs."""
    pid = host.run(["systemctl", "show", "--property=MainPID", "--value", "nginx.service"],
                   check=True).stdout.strip()
    assert pid != "0", f"{host.name}: nginx.service is not running"
    return host.run(["sha256sum", f"/proc/{pid}/exe"], check=True).stdout.split()[0]


def prepare(host: Host, index: int, public_key: str) -> None:
    """What the operator did once on each host: SSH access, the health endpoint, the
    volumes and the configuration."""
    host.write_file("/root/.ssh/authorized_keys", public_key, mode=0o600)
    host.path("/root/.ssh").chmod(0o700)
    healthy = index != BAD
    host.write_file("/etc/nginx/conf.d/health.conf",
                    HEALTH % ((200, "ok") if healthy else (503, "not ready")))
    host.run(["systemctl", "reload", "nginx"], check=True)
    for path in ("/usr/sbin", "/etc/nginx", "/var/lib/dpkg"):
        au_ok(host, "volume", "adopt", path, "--role", "system")
    for path in ("/var/log/nginx", "/var/lib/nginx"):
        au_ok(host, "volume", "adopt", path, "--role", "data")
    host.write_file("/root/nginx.toml", CONFIG)
    au_ok(host, "config", "load", "/root/nginx.toml")
    wait_until(lambda: host.run(["systemctl", "is-active", "ssh"]).stdout.strip() == "active",
               60, f"{host.name}: ssh.service active")


def boot(index: int, workdir: Path, network: FleetNetwork, public_key: str) -> Host:
    # nspawn keeps CAP_NET_ADMIN in the bounding set only with a private network of its
    # own; root on a real host has it, and the Upgrade Side's private link needs it in the
    # daemon that an SSH login starts.
    host = Host.create(FLEET, workdir / f"h{index}", network=network.for_host(index),
                       nspawn_options=["--capability=CAP_NET_ADMIN"])
    try:
        report = host.boot()
        assert report.state == "running", (
            f"test host {host.name} is {report.state}: failed units {list(report.failed)}")
        host.install_project()
        prepare(host, index, public_key)
    except BaseException:
        host.destroy()
        raise
    return host


def inventory(network: FleetNetwork, key: Path) -> str:
    lines = ["[fleet]"]
    lines += [f"h{i} ansible_host={network.address(i)}" for i in range(1, SIZE + 1)]
    lines += ["", "[fleet:vars]", "ansible_user=root",
              f"ansible_ssh_private_key_file={key}",
              "ansible_ssh_common_args='-o StrictHostKeyChecking=no "
              "-o UserKnownHostsFile=/dev/null -o ConnectTimeout=20'",
              "ansible_python_interpreter=/usr/bin/python3"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    problem = host_problem()
    if problem:
        cannot_run(problem)
    work = tmp_path_factory.mktemp("fleet")
    key = work / "id_ed25519"
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f",
              str(key)], timeout=30)
    public_key = (work / "id_ed25519.pub").read_text()
    network = FleetNetwork(SIZE)
    hosts: list[Host] = []
    try:
        network.create()
        with ThreadPoolExecutor(SIZE) as pool:
            futures = [pool.submit(boot, i, work, network, public_key)
                       for i in range(1, SIZE + 1)]
            errors = []
            for future in futures:
                try:
                    hosts.append(future.result())
                except Exception as exc:  # every host is destroyed; the first error told
                    errors.append(exc)
            if errors:
                raise errors[0]
        inv = work / "inventory.ini"
        inv.write_text(inventory(network, key))
        ansible = Ansible(installed_collection(work), work,
                          env={"ANSIBLE_PIPELINING": "1", "ANSIBLE_TIMEOUT": "30",
                               "ANSIBLE_CALLBACKS_ENABLED":
                                   "activeupgrade.fleet.rollout_summary",
                               "AU_ROLLOUT_SUMMARY": str(work / "summary.json")},
                          launcher=tuple(network.in_controller([])))
        yield Fleet(hosts, network, ansible, inv, work)
    finally:
        with ThreadPoolExecutor(SIZE) as pool:
            list(pool.map(lambda h: h.destroy(), hosts))
        network.remove()


def summary(fleet: Fleet) -> dict[str, dict[str, Any]]:
    rows = json.loads((fleet.workdir / "summary.json").read_text())
    return {r["host"]: r for r in rows}


def test_rolling_upgrade_stops_at_the_host_that_fails_its_health_gate(fleet: Fleet) -> None:
    before = {h.name: running_nginx(h) for h in fleet.hosts}
    playbook = (fleet.ansible.collections
                / "ansible_collections/activeupgrade/fleet/playbooks/rolling_upgrade.yml")
    rollout = {
        "au_serial": [1, 2, 2],
        "au_stage_packages": ["nginx"],
        "au_install_commands": [["apt-get", "update"],
                                ["apt-get", "install", "-y", "nginx"]],
        "au_health_url": "http://127.0.0.1:8081/health",
        "au_health_retries": 3, "au_health_delay": 1, "au_timeout": 600,
    }
    # First a dry run: every host's plan (au plan), nothing changed anywhere.
    dry = fleet.ansible.playbook(playbook, fleet.inventory, extra_vars=rollout, check=True,
                                 timeout=600)
    assert dry.returncode == 0, dry.output
    assert "ACTIVE UPGRADE ROLLOUT (check mode: nothing was changed)" in dry.done.stdout
    for index, host in enumerate(fleet.hosts, start=1):
        split = [r for r in dry.results(f"h{index}") if r["task"].endswith("Split")]
        assert [r["plan"]["actions"][1]["request"] for r in split] == ["PrepareSplit"]
        assert json.loads(au_ok(host, "history", "--json")) == []
        assert nginx_version(host) == OLD

    run = fleet.ansible.playbook(playbook, fleet.inventory, extra_vars=rollout,
                                 timeout=1200)
    print(run.done.stdout[run.done.stdout.find("ACTIVE UPGRADE ROLLOUT") - 1:])
    # The rollout stopped: the play failed on h3 and never reached the last batch.
    assert run.returncode == 2, run.output
    assert "ACTIVE UPGRADE ROLLOUT" in run.done.stdout
    rows = summary(fleet)
    assert {name: r["outcome"] for name, r in rows.items()} == {
        "h1": "committed", "h2": "committed", "h3": "aborted", "h4": "untouched",
        "h5": "untouched"}, rows
    assert "Health gate" in rows["h3"]["reason"], rows["h3"]
    for name in ("h1", "h2", "h3"):
        assert rows[name]["merge"] is not None and rows[name]["disruption"] is not None
    assert rows["h3"]["gate"] is not None and rows["h3"]["end"] is not None
    assert list(rows) == ["h1", "h2", "h3", "h4", "h5"]
    assert {r["state"] for r in rows.values()} == {"Idle"}

    for index, host in enumerate(fleet.hosts, start=1):
        status = json.loads(au_ok(host, "status", "--json"))
        assert (status["upgrade_state"], status["operational_state"], status["duplex"]) == (
            "Idle", "Ready", True), (host.name, status)
        history = json.loads(au_ok(host, "history", "--json"))
        outcomes = [s.get("outcome") for s in history]
        binary = running_nginx(host)
        if index in (1, 2):
            assert nginx_version(host) == NEW
            assert binary != before[host.name]
            assert binary == host.run(["sha256sum", "/usr/sbin/nginx"],
                                      check=True).stdout.split()[0]
            assert outcomes == ["committed"], history
        elif index == BAD:
            assert nginx_version(host) == OLD and binary == before[host.name]
            assert outcomes == ["aborted"], history
        else:
            assert nginx_version(host) == OLD and binary == before[host.name]
            assert history == []
