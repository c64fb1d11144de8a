"""The test host itself: booted systemd, commands inside, offline apt, what the kernel
allows inside, reboot, power cut, and a teardown that leaves nothing behind.

One host (recipe NGINX, the project installed) serves the checks that leave it as they
found it; reboot and power cut run last on it; the teardown check boots a host of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade import proc
from tests.host import BASE, NGINX, Host, NetnsPath
from tests.host.cache import build_info, reflink_area
from tests.host.fixtures import booted_host
from tests.host.machine import mounts_under, sweep_stale
from tests.support import cannot_run

PROBE = Path(__file__).with_name("probe.py")
NEEDED = ("unshare --pid --mount --uts --net --ipc", "bind mount (mount(2) MS_BIND)",
          "veth pair in a new network namespace", "veth pair in the host's network namespace",
          "inotify", "write lease (F_SETLEASE)", "open_tree + move_mount",
          "move_mount MOVE_MOUNT_BENEATH", "mount_setattr", "unshare --user --map-root-user",
          "user namespace with an identity uid/gid map", "fanotify FAN_MARK_FILESYSTEM",
          "open_by_handle_at")
"""What the tool uses or may use on a real host, so what a test host must allow."""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    with booted_host(NGINX, tmp_path_factory.mktemp("test-host")) as h:
        yield h


def test_commands_inside(host: Host) -> None:
    assert host.run(["cat", "/proc/1/comm"], check=True).stdout.strip() == "systemd"
    assert host.run(["hostname"], check=True).stdout.strip() == host.name
    done = host.run(["python3", "-c", "import os,sys; print(os.environ['X']); "
                     "print('err', file=sys.stderr); sys.exit(7)"], env={"X": "given"})
    assert (done.returncode, done.stdout, done.stderr) == (7, "given\n", "err\n")
    assert "PYTHONPATH" not in host.run(["env"], check=True).stdout  # a clean environment
    host.write_file("/root/put-in", "through the root folder\n")
    assert host.run(["cat", "/root/put-in"]).stdout == "through the root folder\n"
    # The network: loopback only.
    links = host.run(["ip", "-o", "link"], check=True).stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]


def test_au_installed_offline(host: Host) -> None:
    assert host.run(["readlink", "/usr/local/bin/au"]).stdout.strip() == \
        "/opt/activeupgrade/bin/au"
    host.au("init", check=True)
    st = json.loads(host.au("status", "--json", check=True).stdout)
    assert st["upgrade_state"] == "Idle"
    pip = host.run(["/opt/activeupgrade/bin/pip", "list", "--format=json"], check=True)
    names = {p["name"].lower() for p in json.loads(pip.stdout)}
    assert "activeupgrade" in names and "starlette" in names
    assert not names & {"pytest", "mypy", "hypothesis", "ruff", "playwright"}  # no test tools


def test_older_version_and_offline_apt(host: Host) -> None:
    """The recipe's older nginx is installed; the local repository has bookworm-security's
    and apt finds it with no network (the Debian sources do not make it fail)."""
    installed = host.run(["dpkg-query", "-W", "-f", "${Version}", "nginx"], check=True).stdout
    assert installed == "1.22.1-9+deb12u9"
    assert build_info(NGINX)["versions"]["nginx"] == installed  # type: ignore[index]
    host.run(["apt-get", "update", "-q"], check=True, timeout=120)
    done = host.run(["apt-get", "--download-only", "-y", "-q", "upgrade"], check=True,
                    timeout=300, env={"DEBIAN_FRONTEND": "noninteractive"})
    assert "2 upgraded" in done.stdout, done.stdout
    debs = host.run(["ls", "/var/cache/apt/archives"]).stdout.split()
    newer = [d for d in debs if d.startswith("nginx_") and d.endswith(".deb")]
    assert len(newer) == 1 and "deb12u9" not in newer[0], debs
    assert host.run(["dpkg-query", "-W", "-f", "${Version}", "nginx"]).stdout == installed
    host.run(["apt-get", "clean"], check=True)


def test_what_the_kernel_allows_inside(host: Host) -> None:
    shutil.copy(PROBE, host.path("/root/probe.py"))
    for service in (False, True):
        done = host.run(["python3", "/root/probe.py"], service=service, check=True,
                        timeout=120)
        results = json.loads(done.stdout)
        refused = {k: v for k, v in results.items() if k in NEEDED and v != "ok"}
        assert not refused, f"service={service}: {refused}"


def test_upgrade_side_built_by_au_started_from_systemd(host: Host) -> None:
    """`au` started by the host's systemd (as over ssh: nspawn's capabilities and system
    call filter) builds the Upgrade Side (namespaces, bind mounts, the private link)."""
    host.write_file("/opt/confined/VERSION", "1\n")

    def au(*args: str) -> str:
        done = host.run(["au", *args], service=True, timeout=180)
        assert done.returncode == 0, f"au {' '.join(args)}: {done.stderr}"
        return done.stdout

    au("volume", "adopt", "/opt/confined", "--role", "system")
    au("split")
    for ns in ("mnt", "net", "pid", "uts"):
        side = host.run(["au", "exec", "--", "readlink", f"/proc/self/ns/{ns}"], service=True)
        here = host.run(["readlink", f"/proc/self/ns/{ns}"])
        assert side.returncode == 0 and side.stdout != here.stdout, ns
    au("exec", "--", "sed", "-i", "s/1/2/", "/opt/confined/VERSION")
    inside = host.run(["au", "exec", "--", "cat", "/opt/confined/VERSION"], service=True)
    assert inside.stdout == "2\n"
    hostname = host.run(["au", "exec", "--", "hostname"], service=True).stdout.strip()
    assert hostname != host.name  # its own UTS namespace
    assert host.run(["cat", "/opt/confined/VERSION"]).stdout == "1\n"  # Production's
    au("abort")
    au("finish")
    assert host.run(["cat", "/opt/confined/VERSION"]).stdout == "1\n"


def test_reboot_and_power_cut(host: Host) -> None:
    boot_id = host.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout
    host.write_file("/var/lib/kept", "written before\n")
    host.run(["systemctl", "start", "nginx"], check=True)
    report = host.reboot()
    assert report.state == "running", report
    assert host.run(["systemctl", "is-active", "nginx"]).stdout.strip() == "active"
    assert host.run(["cat", "/var/lib/kept"]).stdout == "written before\n"
    # Inside, each boot is a boot of its own (nspawn gives it a new boot id).
    rebooted_id = host.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout
    assert rebooted_id != boot_id
    old_leader = host.leader
    host.run(["sh", "-c", "echo cut > /var/lib/after; sync"], check=True)
    host.power_cut()
    assert not proc.alive(old_leader)
    assert host.boot().state == "running"
    assert host.run(["cat", "/var/lib/after"]).stdout == "cut\n"
    assert host.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout not in (
        boot_id, rebooted_id)


def _nspawn_pids(root: Path) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(root).encode() in argv:
                out.append(int(d.name))
    return out


def test_teardown_leaves_nothing(tmp_path: Path) -> None:
    netns = f"au-th-{os.getpid()}-{secrets.token_hex(3)}"
    proc.run(["ip", "netns", "add", netns], timeout=30)
    try:
        with booted_host(BASE, tmp_path / "h", project=False,
                         network=NetnsPath(Path("/run/netns") / netns)) as h:
            root, leader, name = h.root, h.leader, h.name
            h.run(["ip", "link", "add", "th0", "type", "veth", "peer", "name", "th1"],
                  check=True)
            assert _nspawn_pids(root)
        # A veth pair made inside is in the test's namespace, removed with it.
        seen = proc.run(["ip", "netns", "exec", netns, "ip", "-o", "link"], timeout=30)
        assert "th0" in seen.stdout
    finally:
        proc.run(["ip", "netns", "del", netns], timeout=30, check=False)
    assert not proc.alive(leader)
    assert not _nspawn_pids(root)
    assert not mounts_under(tmp_path)
    assert not root.exists()
    assert not Path(f"/run/systemd/nspawn/propagate/{name}").exists()
    assert (tmp_path / "h/console.log").exists()  # kept for a failed test's reader


@pytest.mark.debian_host(recipe=BASE, project=False)
def test_fixture_with_a_recipe(debian_host: Host) -> None:
    assert debian_host.run(["systemctl", "is-system-running"]).stdout.strip() == "running"
    assert debian_host.run(["dpkg-query", "-W", "nginx"]).returncode != 0  # not in BASE
    assert not debian_host.path("/usr/local/bin/au").exists()


def test_a_killed_run_leaves_its_host_to_the_next(tmp_path: Path) -> None:
    """A host whose creating process died without destroying it (a killed test run) is
    killed and removed by the next run's sweep; a live creator's host is left alone."""
    area = reflink_area()
    if area is None:
        cannot_run("the cache's XFS image cannot be mounted (no loop device)")
    with booted_host(BASE, tmp_path / "h", project=False) as h:
        sweep_stale(area / "hosts")  # (stale hosts of earlier runs may go too)
        assert h.root.exists() and h.booted  # ours stays: its creator (this process) lives
        dead = proc.spawn(["true"], env={})
        dead.wait()
        owner_file = h.root.parent / f"{h.root.name}.owner.json"
        owner = json.loads(owner_file.read_text())
        owner_file.write_text(json.dumps({**owner, "creator": dead.pid}))
        leader = h.leader
        assert h.name in sweep_stale(area / "hosts")
        assert not proc.alive(leader)
        assert not h.root.exists() and not owner_file.exists()
    assert not mounts_under(tmp_path)


def test_a_sweep_judges_only_hosts_of_its_own_pid_namespace(tmp_path: Path) -> None:
    """A creator's pid says nothing in another PID namespace (a run in a container, or
    under ``unshare --pid``, sharing the cache): such a host is never taken for stale."""
    dead = proc.spawn(["true"], env={})
    dead.wait()
    here = os.stat("/proc/self/ns/pid").st_ino
    for name, pidns in (("au-here", here), ("au-there", here + 1)):
        (tmp_path / name / "etc").mkdir(parents=True)
        (tmp_path / f"{name}.owner.json").write_text(json.dumps({
            "name": name, "root": str(tmp_path / name), "nspawn": 0, "leader": 0,
            "creator": dead.pid, "creator_start": "1", "creator_pidns": pidns}))
    assert sweep_stale(tmp_path) == ["au-here"]  # its creator is gone: stale
    assert not (tmp_path / "au-here").exists()
    assert (tmp_path / "au-there" / "etc").is_dir()
    assert (tmp_path / "au-there.owner.json").exists()
