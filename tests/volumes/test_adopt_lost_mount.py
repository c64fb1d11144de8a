"""A live path's mount removed behind the tool's back (``umount -l``) is noticed: the status
is not Duplex, the duplex check AU-C001 fails naming the volume and the command that fixes
it, and that command (`au volume attach NAME`) does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import au

from .helpers import session_config, unmount_under


def _duplex_check(home: Path, cfg: Path) -> str:
    """The line of AU-C001 in `au check`'s report."""
    r = au(home, "check", "--config", str(cfg))
    assert "Traceback" not in r.stderr, r.stderr
    return next(line.strip() for line in r.stdout.splitlines() if "AU-C001" in line)


def test_a_removed_bind_of_replica_a_is_noticed_and_attach_fixes_it(
        tmp_path: Path, needs_root: None) -> None:
    home = tmp_path / "home"
    data = tmp_path / "var" / "lib" / "shop"
    data.mkdir(parents=True)
    (data / "orders").write_text("1\n")
    cfg = session_config(tmp_path / "configs", [(data, "data")])
    try:
        assert au(home, "volume", "adopt", str(data), "--role", "data").returncode == 0
        name = "-".join(data.parts[1:])
        assert "Duplex:            Duplex" in au(home, "status").stdout
        assert _duplex_check(home, cfg).startswith("ok")
        replica_a = home / "replicas" / name / "a"
        subprocess.run(["umount", "-l", str(replica_a)], check=True)
        assert "Duplex:            Simplex" in au(home, "status").stdout
        line = _duplex_check(home, cfg)
        assert not line.startswith("ok") and f"run `au volume attach {name}`" in line, line
        r = au(home, "volume", "attach", name)
        assert r.returncode == 0 and "shows replica a again" in r.stdout, r.stderr
        assert (replica_a / "orders").read_text() == "1\n"
        assert "Duplex:            Duplex" in au(home, "status").stdout
        assert _duplex_check(home, cfg).startswith("ok")
        r = au(home, "volume", "attach", name)
        assert r.returncode == 0 and "nothing to do" in r.stdout
    finally:
        au(home, "daemon", "--stop")
        unmount_under(tmp_path)
