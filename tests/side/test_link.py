"""Private link addresses chosen per instance when not configured (AU-C009 checks them)."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path

from activeupgrade.checks.runner import CheckEnv, run_one
from activeupgrade.config.model import Config, UpgradeSideSpec
from activeupgrade.instance import Instance
from activeupgrade.platform.side import link
from activeupgrade.store.db import Store


def iface(text: str) -> ipaddress.IPv4Interface:
    return ipaddress.IPv4Interface(text)


def test_a_free_slash_30_is_chosen_around_what_the_host_uses(tmp_path: Path) -> None:
    inst = Instance(tmp_path / "home")
    host, side = link.choose(inst, [], start=0)
    assert (host, side) == ("169.254.1.1/30", "169.254.1.2/30")
    # Taken by an interface (another instance's link, or anything else): the next one.
    used = [("au1234abh", iface("169.254.1.1/30")), ("eth0", iface("169.254.1.4/24"))]
    assert link.choose(inst, used, start=0) == ("169.254.2.1/30", "169.254.2.2/30")
    # Our own link left by a crash does not count: it is rebuilt.
    own = link.link_names(inst)[0]
    assert link.choose(inst, [(own, iface("169.254.1.1/30"))], start=0)[0] == "169.254.1.1/30"
    # Never the default addresses the documentation shows, never the cloud metadata range.
    for n in range(0, link.AUTO_SLOTS, 97):
        net = iface(link.choose(inst, [], start=n)[0]).network
        assert ipaddress.ip_network("169.254.1.0/24").network_address <= net.network_address
        assert net.broadcast_address <= ipaddress.ip_address("169.254.99.255")
    other = Instance(tmp_path / "other")
    assert link.start_of(inst) != link.start_of(other)


def test_link_names_differ_for_two_folders_at_one_path(tmp_path: Path) -> None:
    """Chroots or containers sharing the network namespace each have an instance at
    ``/var/lib/activeupgrade``: same path, different folders, so different link names
    (named by the path alone, the second split deleted the first one's link)."""
    home = tmp_path / "var/lib/activeupgrade"
    home.mkdir(parents=True)
    first = link.link_names(Instance(home))
    assert link.link_names(Instance(home)) == first  # stable for one folder
    home.rename(tmp_path / "first-root")
    home.mkdir()
    second = link.link_names(Instance(home))
    assert second != first
    for name in (*first, *second):
        assert len(name) <= 15 and re.fullmatch(r"au[0-9a-f]{6}[hs]", name), name


def test_check_reports_the_chosen_addresses(tmp_path: Path) -> None:
    inst = Instance(tmp_path / "home")
    inst.ensure()
    store = Store(inst.db)
    try:
        env = CheckEnv(instance=inst, store=store, config=Config(
            upgrade_side=UpgradeSideSpec(isolation="namespaces")))
        result = run_one("AU-C009", env)
    finally:
        store.close()
    assert result.ok, result.message
    assert "chosen for this instance" in result.message
    assert result.details["host_address"].startswith("169.254.")


RACE = """
import json, sys, threading
from pathlib import Path
from activeupgrade import proc
from activeupgrade.instance import Instance
from activeupgrade.platform.side import link
got = {}
def take(n):
    inst = Instance(Path(sys.argv[1]) / f"home{n}")
    with link.held():
        host, _ = link.choose(inst, link.host_addresses(), start=0)
        proc.run(["ip", "link", "add", f"race{n}", "type", "veth", "peer", "name", f"peer{n}"])
        proc.run(["ip", "addr", "add", host, "dev", f"race{n}"])
    got[n] = host
threads = [threading.Thread(target=take, args=(n,)) for n in range(6)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(got))
"""


def test_instances_starting_at_once_never_take_the_same_addresses(
    needs_root: None, tmp_path: Path
) -> None:
    # Six instances whose searches start at the same /30, in a network namespace of this
    # test's own (the host's interfaces are never touched).
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", RACE, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert len(set(got.values())) == 6, got
