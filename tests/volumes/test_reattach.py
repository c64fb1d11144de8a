"""After a reboot the live paths are the original folders (replica A) again: the daemon's
start binds replica A and attaches each path to the replica it must show (the upgraded one
after a commit)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from activeupgrade.platform.volumes import livepath
from tests.support import au

from .helpers import session_config, unmount_under


def reboot(home: Path, live: Path) -> None:
    """What a reboot does to us: the daemon is gone and every mount with it; the path shows
    the original directory, never an empty folder."""
    au(home, "daemon", "--stop")
    while livepath.mounted(live):
        subprocess.run(["umount", "-l", str(live)], check=True)
    unmount_under(home)
    assert (live / "version").exists()


def test_daemon_start_attaches_live_paths_again(tmp_path: Path, needs_root: None) -> None:
    home = tmp_path / "home"
    sysv = tmp_path / "opt" / "app"
    sysv.mkdir(parents=True)
    (sysv / "version").write_text("1\n")
    try:
        assert au(home, "volume", "adopt", str(sysv), "--role", "system").returncode == 0
        reboot(home, sysv)
        assert au(home, "status").returncode == 0
        assert (sysv / "version").read_text() == "1\n"
        cfg = session_config(tmp_path / "configs", [(sysv, "system")])
        assert au(home, "split", "--config", str(cfg)).returncode == 0
        assert au(home, "exec", "--", "/bin/sh", "-c", f"echo 2 > {sysv}/version").returncode == 0
        for verb in ("merge", "commit", "finish"):
            r = au(home, verb)
            assert r.returncode == 0, r.stderr
        assert (sysv / "version").read_text() == "2\n"
        reboot(home, sysv)
        assert au(home, "status").returncode == 0
        assert (sysv / "version").read_text() == "2\n", "the upgraded replica is shown again"
        assert livepath.mounted(sysv), "replica b is mounted on the original directory again"
        log = au(home, "log", "--event", "volume.reattach").stdout
        assert "attached again to replica" in log
        assert au(home, "volume", "verify").returncode == 0
        # the live mount removed behind the tool's back while the daemon runs: noticed
        subprocess.run(["umount", "-l", str(sysv)], check=True)
        assert "Duplex:            Simplex" in au(home, "status").stdout
        shown = au(home, "volume", "show", str(sysv)).stdout
        assert "not replica b" in shown, shown
        r = au(home, "volume", "attach", str(sysv))
        assert r.returncode == 0 and "shows replica b again" in r.stdout, r.stderr
        assert livepath.mounted(sysv) and "Duplex:            Duplex" in au(home, "status").stdout
    finally:
        au(home, "daemon", "--stop")
        unmount_under(tmp_path)
