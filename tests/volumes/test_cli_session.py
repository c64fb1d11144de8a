"""Black-box session through the `au` entry point: adopt, split, install on the Upgrade
Side with `au exec`, merge, then commit or abort; data writes survive either way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import session_config, unmount_under

AU = [sys.executable, "-m", "activeupgrade"]


def au(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AU_HOME": str(home)}
    done = subprocess.run([*AU, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_cli_session(tmp_path: Path, outcome: str, needs_root: None) -> None:
    home = tmp_path / "home"
    sysv, datav = tmp_path / "opt" / "shop", tmp_path / "var" / "shop"
    sysv.mkdir(parents=True)
    datav.mkdir(parents=True)
    (sysv / "version").write_text("1\n")
    (datav / "orders").write_text("order 1\n")
    try:
        au(home, "volume", "adopt", str(sysv), "--role", "system")
        au(home, "volume", "adopt", str(datav), "--role", "data")
        cfg = session_config(tmp_path / "configs", [(sysv, "system"), (datav, "data")])
        au(home, "split", "--config", str(cfg))
        au(home, "exec", "--", "sh", "-c", f"echo 2 > {sysv}/version")
        assert (sysv / "version").read_text() == "1\n"
        with (datav / "orders").open("a") as fh:
            fh.write("order 2\n")
        au(home, "merge")
        assert (sysv / "version").read_text() == "2\n"
        with (datav / "orders").open("a") as fh:
            fh.write("order 3\n")
        au(home, outcome, "--yes")  # no terminal to confirm on
        au(home, "finish")
        assert "quick" in au(home, "volume", "verify").stdout
        assert "byte for byte" in au(home, "volume", "verify", "--full").stdout
        shown = au(home, "volume", "show", str(datav)).stdout
        assert "storage:    plain" in shown and "resync on commit" in shown, shown
        assert (sysv / "version").read_text() == ("2\n" if outcome == "commit" else "1\n")
        assert (datav / "orders").read_text() == "order 1\norder 2\norder 3\n"
        listed = au(home, "volume", "list", "--json").stdout
        assert '"duplex": true' in listed
        for path in (sysv, datav):
            au(home, "volume", "release", str(path).lstrip("/").replace("/", "-"))
        assert (sysv / "version").read_text() == ("2\n" if outcome == "commit" else "1\n")
    finally:
        lock = home / "engine.lock"
        if lock.exists() and lock.read_text().strip():
            try:
                os.kill(int(lock.read_text().split()[0]), signal.SIGTERM)
            except ProcessLookupError:
                pass
        unmount_under(tmp_path)
