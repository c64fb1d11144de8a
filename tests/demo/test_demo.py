"""``au demo`` end to end through the entry point: a full session with commit, then one that
aborts from merge, under load; the report must show 0 failed requests and 0 lost orders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from activeupgrade.demo.load import ShopClient
from activeupgrade.demo.orchestrator import mounts_under
from tests.support import cannot_run


def run_demo(tmp_path: Path, *extra: str,
             as_nobody: list[str] | None = None) -> tuple[int, dict[str, Any], str]:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop("AU_HOME", None)
    argv = [sys.executable, "-m", "activeupgrade", "demo", "--json", *extra]
    if as_nobody is not None:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
               "PYTHONPATH": os.pathsep.join(as_nobody)}
        argv = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                SYSTEM_PYTHON, *argv[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240,
                          check=False)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"no JSON report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.returncode, report, done.stderr


def assert_clean_success(tmp_path: Path, code: int, report: dict[str, Any], err: str) -> None:
    load, orders = report["load"], report["orders"]
    # Whatever else happened: no client request failed, no order was lost, nothing is left.
    assert load["requests_sent"] > 50 and load["requests_failed"] == 0, load["failures"]
    assert orders["orders_written"] > 20
    assert orders["orders_lost"] == 0
    assert orders["orders_verified"] == orders["orders_written"]
    assert not Path(report["root"]).exists()
    assert mounts_under(tmp_path) == []
    problems = report["problems"]
    assert code == 0, f"{problems}\n{err[-3000:]}"
    assert report["ok"] is True
    # Orders were written while split and while merged, in both sessions.
    for phase in ("split", "merge", "merge-2", "abort"):
        assert orders["written_by_phase"].get(phase, 0) > 0, orders["written_by_phase"]
    versions = report["versions"]
    assert versions["during split (Production)"] == "1.0.0"
    assert versions["after merge"] == "2.0.0"
    assert versions["session 2, after merge"] == "3.0.0"
    assert versions["after abort from merge"] == "2.0.0"
    assert {s["label"].split()[-1] for s in report["switchovers"]} >= {"merge", "abort"}


def test_demo_as_root(tmp_path: Path, needs_root: None) -> None:
    code, report, err = run_demo(tmp_path)
    assert_clean_success(tmp_path, code, report, err)
    assert report["isolation"].startswith("namespaces"), report["isolation"]


SYSTEM_PYTHON = "/usr/bin/python3"


def nobody_path() -> list[str] | None:
    """As root, the demo runs as ``nobody`` with the system Python of the same version and
    this checkout's sources and site-packages (the virtual environment's own interpreter
    may sit in a folder ``nobody`` cannot enter). None when that is not possible here."""
    if shutil.which("setpriv") is None or not Path(SYSTEM_PYTHON).exists():
        return None
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True, check=False)
    if probe.stdout.strip() != str(tuple(sys.version_info[:2])):
        return None
    import httpx

    import activeupgrade

    src = Path(activeupgrade.__file__).resolve().parent.parent
    site = Path(httpx.__file__).resolve().parent.parent
    return [str(src), str(site)]


def test_demo_unprivileged(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        code, report, err = run_demo(tmp_path)
        assert_clean_success(tmp_path, code, report, err)
        assert report["isolation"].startswith("directory"), report["isolation"]
        return
    path = nobody_path()
    if path is None:
        cannot_run(f"cannot run the demo as nobody here (setpriv, {SYSTEM_PYTHON} of "
                    "this Python version)")
    # pytest's own folder is private to root: nobody gets a folder of its own.
    folder = Path(tempfile.mkdtemp(prefix="au-demo-test-", dir="/tmp"))
    try:
        folder.chmod(0o1777)  # like /tmp: a folder anyone may write would be refused
        code, report, err = run_demo(folder, as_nobody=path)
        assert Path(report["root"]).parent == folder
        assert report["isolation"].startswith("directory"), report["isolation"]
        assert_clean_success(folder, code, report, err)
    finally:
        if not mounts_under(folder):
            shutil.rmtree(folder, ignore_errors=True)


def test_keep_leaves_a_working_instance_and_clean_removes_it(tmp_path: Path) -> None:
    _code, report, err = run_demo(tmp_path, "--keep")
    assert report["kept"] is True and report["load"]["requests_failed"] == 0, err[-2000:]
    root, home = Path(report["root"]), report["au_home"]
    env = dict(os.environ, AU_HOME=home)
    status = subprocess.run([sys.executable, "-m", "activeupgrade", "status", "--json"],
                            capture_output=True, text=True, env=env, check=True)
    assert json.loads(status.stdout)["upgrade_state"] in ("Idle", "Finish")
    assert ShopClient("127.0.0.1", report["port"], timeout=5).version() in ("2.0.0", "3.0.0")
    done = subprocess.run([sys.executable, "-m", "activeupgrade", "demo", "--clean", str(root)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not root.exists()
    assert mounts_under(tmp_path) == []
    with pytest.raises(ConnectionRefusedError):
        ShopClient("127.0.0.1", report["port"], timeout=5).version()
