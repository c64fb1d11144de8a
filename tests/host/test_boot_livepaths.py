"""Boot safety on a booted Debian host with /etc and /usr as system volumes: after a
reboot in Split and in Merge the boot unit (`au host install`) has attached every live path
to the right replica before the other units start, a unit that writes into /etc at boot
writes into the live replica (never under a mount that hides it), nginx runs the live
side's binary, and the session goes on where it was.

A power cut in the middle of Commit's resync: the upgraded replicas are live again at
boot, the request is Broken (interrupted) and a Retry completes it; a file written after
the boot is kept, and the old replicas end identical to the upgraded ones.

A power cut in the middle of Abort's resync (from Merge): the original software is live again
at boot, a Retry completes the abort, what Production wrote during the split is kept.

One host for the module; two reboots and two power cuts.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.host import NGINX, Host
from tests.host.fixtures import booted_host
from tests.host.machine import HOST_PATH
from tests.support import wait_until

HOME = "/var/lib/activeupgrade"
UNIT = "activeupgrade-livepaths.service"
SOFTWARE = "/usr"
"""The software volume: the whole of /usr (the tool's interpreter and libraries, mount,
systemd and nginx live there)."""
SBIN = f"{HOME}/replicas/usr/{{}}/sbin"
"""/usr/sbin in replica a or b."""
WRITER = """\
[Unit]
Description=writes into /etc at every boot, as a late service would

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'cat /proc/sys/kernel/random/boot_id > /etc/au-written-at-boot'

[Install]
WantedBy=multi-user.target
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    with booted_host(NGINX, tmp_path_factory.mktemp("boot-host")) as h:
        yield h


def _mounted(host: Host, path: str) -> bool:
    points = [line.split()[4] for line in
              host.run(["cat", "/proc/self/mountinfo"], check=True).stdout.splitlines()]
    return path in points


def _ino(host: Host, path: str) -> str:
    return host.run(["stat", "-L", "-c", "%d:%i", path], check=True).stdout.strip()


def _monotonic(host: Host, prop: str, unit: str) -> int:
    out = host.run(["systemctl", "show", "-p", prop, "--value", unit], check=True).stdout
    return int(out.strip() or 0)


def _au(host: Host, *args: str) -> str:
    done = host.au(*args, timeout=300)
    assert done.returncode == 0, f"au {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def _attached_before_everything(host: Host) -> None:
    """The boot unit ran, succeeded, and was done before sysinit.target and nginx."""
    show = host.run(["systemctl", "show", "-p", "ActiveState", "-p", "Result", UNIT],
                    check=True).stdout
    assert "ActiveState=active" in show and "Result=success" in show, show
    done = _monotonic(host, "ExecMainExitTimestampMonotonic", UNIT)
    assert 0 < done <= _monotonic(host, "ActiveEnterTimestampMonotonic", "sysinit.target")
    assert done <= _monotonic(host, "ExecMainStartTimestampMonotonic", "nginx.service")
    assert done <= _monotonic(host, "ExecMainStartTimestampMonotonic", "au-writer.service")


def _reboot(host: Host) -> None:
    report = host.reboot()
    why = {unit: host.run(["systemctl", "status", "--no-pager", "-l", unit]).stdout
           for unit in report.failed}
    assert report.state == "running", why


def _boot_id(host: Host) -> str:
    return host.run(["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout


def _power_cut_during(host: Host, verb: str, state: str, step: str) -> None:
    """Run ``au VERB --yes`` on the host, cut the power once ``step`` is under way, boot
    again. A crash, not a clean reboot (which lets the daemon end its step first): every
    process of the host is killed at once."""
    running = subprocess.Popen(
        ["nsenter", "-t", str(host.leader), "-a", "--", "au", verb, "--yes"],
        env={"PATH": HOST_PATH, "LANG": "C.UTF-8", "HOME": "/root"},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def under_way() -> bool:
            st = json.loads(_au(host, "status", "--json"))
            assert not (st["upgrade_state"] == state and st["operational_state"] == "Ready"), (
                f"{state} ended before the power cut: make BULK larger")
            return bool(st["step"] == step)

        wait_until(under_way, 120, f"{step} to be under way")
        host.power_cut()
        report = host.boot()
        assert report.state == "running", report.failed
    finally:
        running.wait(timeout=60)


def test_reboots_in_split_and_merge(host: Host) -> None:
    times: dict[str, float] = {}
    host.write_file("/etc/systemd/system/au-writer.service", WRITER)
    host.run(["systemctl", "enable", "--now", "au-writer.service"], check=True)
    host.run(["systemctl", "enable", "--now", "nginx.service"], check=True)
    for path in ("/etc", SOFTWARE):
        began = time.monotonic()
        _au(host, "volume", "adopt", path, "--role", "system")
        times[f"adopt {path}"] = time.monotonic() - began
    assert not _mounted(host, "/etc") and _mounted(host, f"{HOME}/replicas/etc/a")
    _au(host, "host", "install")
    status = json.loads(_au(host, "host", "status", "--json"))
    assert status["enabled"] and all(v["problem"] is None for v in status["volumes"])

    began = time.monotonic()
    _au(host, "split")
    times["split"] = time.monotonic() - began
    # the Upgrade Side gets its own nginx binary (a new file) and a marker in /etc
    _au(host, "exec", "--", "cp", "-p", "/usr/sbin/nginx", "/usr/sbin/nginx.new")
    _au(host, "exec", "--", "mv", "/usr/sbin/nginx.new", "/usr/sbin/nginx")
    _au(host, "exec", "--", "cp", "/etc/hostname", "/etc/au-upgraded")
    a_nginx, b_nginx = (_ino(host, SBIN.format(r) + "/nginx") for r in "ab")
    assert a_nginx != b_nginx

    # -- a reboot in Split: replica a is live (the original directories) ------------------
    began = time.monotonic()
    _reboot(host)
    times["reboot in Split"] = time.monotonic() - began
    _attached_before_everything(host)
    for name in ("etc", "usr"):
        assert _mounted(host, f"{HOME}/replicas/{name}/a"), "replica a bound again at boot"
    assert not _mounted(host, "/etc") and not _mounted(host, SOFTWARE)
    pid = host.run(["systemctl", "show", "-p", "MainPID", "--value", "nginx"]).stdout.strip()
    assert _ino(host, f"/proc/{pid}/exe") == a_nginx, "nginx runs Production's binary"
    written = host.run(["cat", f"{HOME}/replicas/etc/a/au-written-at-boot"]).stdout
    assert written == _boot_id(host), "the boot's write is in the live replica"
    st = json.loads(_au(host, "status", "--json"))
    assert st["upgrade_state"] == "Split", st
    # the Upgrade Side did not survive the reboot (its processes are gone); its replicas did
    assert host.run(["test", "-e", f"{HOME}/replicas/etc/b/au-upgraded"]).returncode == 0
    _au(host, "restart-upgrade-side")
    assert host.run(["au", "exec", "--", "test", "-e", "/etc/au-upgraded"]).returncode == 0

    began = time.monotonic()
    _au(host, "merge")
    times["merge"] = time.monotonic() - began
    assert _mounted(host, "/etc") and _mounted(host, SOFTWARE)

    # -- a reboot in Merge: replica b must be shown before anything starts ---------------
    began = time.monotonic()
    _reboot(host)
    times["reboot in Merge"] = time.monotonic() - began
    _attached_before_everything(host)
    assert _mounted(host, "/etc") and _mounted(host, SOFTWARE)
    assert host.run(["test", "-e", "/etc/au-upgraded"]).returncode == 0
    pid = host.run(["systemctl", "show", "-p", "MainPID", "--value", "nginx"]).stdout.strip()
    assert _ino(host, f"/proc/{pid}/exe") == b_nginx, "nginx runs the upgraded binary"
    boot = _boot_id(host)
    assert host.run(["cat", "/etc/au-written-at-boot"]).stdout == boot
    assert host.run(["cat", f"{HOME}/replicas/etc/b/au-written-at-boot"]).stdout == boot
    st = json.loads(_au(host, "status", "--json"))
    assert st["upgrade_state"] == "Merge" and st["operational_state"] == "Ready", st

    began = time.monotonic()
    _au(host, "commit", "--yes")
    times["commit"] = time.monotonic() - began
    began = time.monotonic()
    _au(host, "finish")
    times["finish"] = time.monotonic() - began
    _au(host, "volume", "verify")
    assert json.loads(_au(host, "status", "--json"))["duplex"]
    du = host.run(["du", "-sc", "--block-size=1", f"{HOME}/replicas/etc/b",
                   f"{HOME}/replicas/usr/b"], check=True).stdout
    print("\nboot-livepaths times:", {k: round(v, 2) for k, v in times.items()},
          "disk used by the b replicas:", du.split()[-2], "bytes")


BULK = 60_000
"""Files the upgrade adds to /usr: enough that Commit's resync is seen under way."""
MAKE_BULK = (
    "import os\n"
    "d = '/usr/share/au-bulk'\n"
    "os.makedirs(d)\n"
    f"for i in range({BULK}):\n"
    "    with open(f'{d}/{i}', 'w') as fh:\n"
    "        fh.write(str(i))\n"
)


def test_reboot_in_the_middle_of_commits_resync(host: Host) -> None:
    # After the first test: /etc and /usr adopted, the boot unit installed, Idle.
    _au(host, "split")
    _au(host, "exec", "--", "python3", "-c", MAKE_BULK)
    _au(host, "merge")
    _power_cut_during(host, "commit", "Commit", "volumes.resync-commit")
    _attached_before_everything(host)
    # Commit keeps the upgraded replica (here A, the original folders: the first test
    # committed B, so this session upgraded A): it is live again before anything starts.
    assert host.run(["test", "-e", f"/usr/share/au-bulk/{BULK - 1}"]).returncode == 0
    status = json.loads(_au(host, "host", "status", "--json"))
    assert all(v["problem"] is None for v in status["volumes"]), status
    st = json.loads(_au(host, "status", "--json"))
    assert (st["upgrade_state"], st["operational_state"]) == ("Commit", "Broken"), st
    host.write_file("/etc/au-written-after-boot", "kept\n")

    _au(host, "retry")
    st = json.loads(_au(host, "status", "--json"))
    assert (st["upgrade_state"], st["operational_state"]) == ("Commit", "Ready"), st
    _au(host, "finish")
    _au(host, "volume", "verify", "--full")
    assert json.loads(_au(host, "status", "--json"))["duplex"]
    assert host.run(["cat", "/etc/au-written-after-boot"]).stdout == "kept\n"
    for replica in "ab":
        count = host.run(["sh", "-c", f"ls {HOME}/replicas/usr/{replica}/share/au-bulk | wc -l"],
                         check=True).stdout.strip()
        assert count == str(BULK), f"replica {replica} holds every file of the upgrade"


UPGRADE_BULK = MAKE_BULK.replace("au-bulk", "au-upgrade")
PRODUCTION_BULK = MAKE_BULK.replace("au-bulk", "au-production")


def test_power_cut_in_the_middle_of_aborts_resync(host: Host) -> None:
    """Abort from Merge is cut off while it resyncs: at boot the original software is live
    again before anything starts (the switch back held), the request is Broken, a Retry
    completes it; what Production wrote during the split is kept, the upgrade is gone."""
    # After the tests above: /etc and /usr adopted, the boot unit installed, Idle.
    _au(host, "split")
    live = _ino(host, "/usr/sbin/nginx")  # Production's binary in this session
    _au(host, "exec", "--", "python3", "-c", UPGRADE_BULK)  # the upgrade's files
    # Production writes into its own /usr during the split: abort must carry every one of
    # them into the other replica, so its resync is seen under way.
    host.run(["python3", "-c", PRODUCTION_BULK], check=True)
    _au(host, "merge")
    assert host.run(["test", "-e", f"/usr/share/au-upgrade/{BULK - 1}"]).returncode == 0
    _power_cut_during(host, "abort", "Abort", "volumes.resync-abort")
    _attached_before_everything(host)
    # The original replica is live again from the first unit on: nginx runs its binary.
    assert _ino(host, "/usr/sbin/nginx") == live
    pid = host.run(["systemctl", "show", "-p", "MainPID", "--value", "nginx"]).stdout.strip()
    assert _ino(host, f"/proc/{pid}/exe") == live, "nginx runs Production's binary"
    assert host.run(["test", "-e", "/usr/share/au-upgrade"]).returncode != 0
    st = json.loads(_au(host, "status", "--json"))
    assert (st["upgrade_state"], st["operational_state"]) == ("Abort", "Broken"), st

    _au(host, "retry")
    st = json.loads(_au(host, "status", "--json"))
    assert (st["upgrade_state"], st["operational_state"]) == ("Abort", "Ready"), st
    _au(host, "finish")
    _au(host, "volume", "verify", "--full")
    assert json.loads(_au(host, "status", "--json"))["duplex"]
    for replica in "ab":
        top = f"{HOME}/replicas/usr/{replica}/share"
        assert host.run(["test", "-e", f"{top}/au-upgrade"]).returncode != 0, (
            f"the upgrade's files are gone from replica {replica}")
        count = host.run(["sh", "-c", f"ls {top}/au-production | wc -l"],
                         check=True).stdout.strip()
        assert count == str(BULK), f"replica {replica} keeps every file Production wrote"
