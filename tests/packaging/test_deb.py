"""The Debian package, built by ``scripts/build-deb.sh`` and installed with ``dpkg -i`` on a
clean booted Debian bookworm host (``tests/host``: a root made by mmdebstrap, systemd as
PID 1): ``au`` works, the unit is where systemd finds it and starts as ``Type=notify``
(the daemon's READY=1 is what lets ``systemctl start`` return), the activity log reaches
the journal with its fields, the manual page and the completion files are in their usual
places, and ``dpkg -r`` takes it all away again.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.host import BASE
from tests.host.cache import ensure_wheelhouse
from tests.host.fixtures import booted_host, host_problem
from tests.support import cannot_run, wait_until

PROJECT = Path(__file__).resolve().parents[2]


def build_deb(out: Path) -> Path:
    """The package, built as CI builds it (the dependencies from the test hosts' cached
    wheelhouse: no package index needed)."""
    done = subprocess.run(
        [str(PROJECT / "scripts" / "build-deb.sh"), "--out", str(out), "--wheelhouse",
         str(ensure_wheelhouse())], capture_output=True, text=True, timeout=900,
        stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    deb = Path(done.stdout.strip().splitlines()[-1])
    assert deb.exists() and deb.suffix == ".deb", done.stdout
    assert list(out.glob("activeupgrade-*.whl")), "no wheel beside the package"
    return deb


def test_dpkg_install_on_a_clean_debian_host(tmp_path: Path) -> None:
    problem = host_problem()
    if problem:
        cannot_run(problem)
    deb = build_deb(tmp_path / "dist")
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True,
                             text=True, check=True).stdout
    # The runtime only: no test tool is packaged.
    for tool in ("pytest", "playwright", "mypy", "hypothesis", "ruff"):
        assert f"/site-packages/{tool}/" not in listing, tool
    with booted_host(BASE, tmp_path / "host", project=False) as host:
        assert host.run(["sh", "-c", "command -v au"]).returncode != 0  # a clean host
        host.write_file(f"/root/{deb.name}", deb.read_bytes())
        host.run(["dpkg", "-i", f"/root/{deb.name}"], check=True, timeout=300)

        assert host.run(["au", "--version"], check=True).stdout.strip().startswith("au ")
        assert host.run(["readlink", "-f", "/usr/bin/au"], check=True).stdout.strip() == (
            "/usr/lib/activeupgrade/bin/au")
        unit = host.run(["systemctl", "cat", "activeupgrade.service"], check=True).stdout
        assert "Type=notify" in unit and "KillMode=process" in unit, unit
        man = host.run(["sh", "-c", "zcat /usr/share/man/man1/au.1.gz"], check=True).stdout
        assert man.startswith(".TH AU 1") and "EXIT STATUS" in man
        for path in ("/usr/share/bash-completion/completions/au",
                     "/usr/share/zsh/vendor-completions/_au",
                     "/usr/share/fish/vendor_completions.d/au.fish"):
            assert host.run(["test", "-s", path]).returncode == 0, path
        completed = host.run(["bash", "-c", "source /usr/share/bash-completion/completions/au;"
                              " COMP_WORDS=(au volume ad); COMP_CWORD=2; _au;"
                              " echo \"${COMPREPLY[*]}\""], check=True).stdout.strip()
        assert completed == "adopt", completed

        # No instance: nothing is created, the unit is skipped by its condition.
        missing = host.au("status")
        assert missing.returncode == 5 and "no instance" in missing.stderr, missing.stderr
        assert host.run(["test", "-e", "/var/lib/activeupgrade/state.db"]).returncode != 0
        # An instance made on purpose: the CLI starts the packaged unit, which is started
        # only once the daemon said READY=1 (Type=notify).
        host.au("init", check=True)
        status = json.loads(host.au("status", "--json", check=True).stdout)
        assert status["upgrade_state"] == "Idle" and status["operational_state"] == "Ready"
        assert status["updated_time"][-6] in "+-"  # ISO 8601 with its offset
        shown = host.run(["systemctl", "show", "activeupgrade.service", "-p", "ActiveState",
                          "-p", "Type", "-p", "MainPID", "-p", "StatusText"], check=True).stdout
        assert "ActiveState=active" in shown and "Type=notify" in shown, shown
        assert "StatusText=serving /var/lib/activeupgrade/api.sock" in shown, shown

        # The activity log in the journal, with its fields.
        host.au("log", "--tail", "1", check=True)

        def started() -> str:
            return str(host.run(["journalctl", "--no-pager", "-o", "json", "-t",
                                 "activeupgrade", "AU_EVENT=daemon.start"], check=True).stdout)

        wait_until(lambda: started().strip() != "", timeout=60,
                   what="the daemon.start entry in the journal")
        journal = started()
        entries = [json.loads(line) for line in journal.splitlines() if line.strip()]
        assert entries, "no daemon.start entry in the journal"
        first = entries[-1]
        assert first["AU_HOME"] == "/var/lib/activeupgrade"
        assert first["PRIORITY"] == "6" and first["MESSAGE"].startswith("daemon started")
        assert first["AU_SEVERITY"] == "info" and first["AU_ENTRY"].isdigit()

        host.run(["systemctl", "stop", "activeupgrade.service"], check=True, timeout=60)
        # journald reads its socket on its own time: wait for the entry to be stored.
        wait_until(lambda: host.run(
            ["journalctl", "--no-pager", "-o", "json", "-t", "activeupgrade",
             "AU_EVENT=daemon.stop"], check=True).stdout.strip() != "",
            timeout=60, what="the daemon.stop entry in the journal")
        assert host.run(["systemctl", "is-active", "activeupgrade.service"]).stdout.strip() in (
            "inactive", "deactivating")

        host.run(["dpkg", "-r", "activeupgrade"], check=True, timeout=300)
        for path in ("/usr/bin/au", "/usr/lib/activeupgrade", "/lib/systemd/system/"
                     "activeupgrade.service", "/usr/share/man/man1/au.1.gz"):
            assert host.run(["test", "-e", path]).returncode != 0, path
