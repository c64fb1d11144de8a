"""Failure reasons are words, never Python internals (issue: `(last exit {'pid': 4127,
'at': …, 'returncode': 1, 'ran': 0.09})`), and `au demo --clean` exits non-zero when the
tree could not be removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from activeupgrade.demo import configs
from activeupgrade.platform.services.supervisor import describe_exit
from tests.support import cannot_run, new_instance


def test_the_last_exit_in_words() -> None:
    assert describe_exit({"pid": 4127, "at": 1.0, "returncode": 1, "ran": 0.09}) == (
        "pid 4127 exited with 1 after 0.09s")
    assert describe_exit({"pid": 9, "returncode": -9, "ran": 2}) == (
        "pid 9 was killed by SIGKILL after 2.00s")
    assert describe_exit({}) == "it has not exited yet"
    assert describe_exit(None) == "it has not exited yet"
    for text in (describe_exit({"pid": 1, "returncode": -200}), describe_exit("x")):
        assert "{" not in text and "'" not in text


def test_demo_clean_fails_when_the_tree_stays(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        cannot_run("an immutable file (chattr +i) needs root")
    root = tmp_path / "demo"
    home = new_instance(root / "au-home")
    (home / "configs").mkdir(exist_ok=True)
    (home / "configs" / configs.PARENT).write_text("")
    stuck = root / "var" / "log" / "stuck"
    stuck.parent.mkdir(parents=True)
    stuck.write_text("x")
    subprocess.run(["chattr", "+i", str(stuck)], check=True)
    try:
        done = subprocess.run([sys.executable, "-m", "activeupgrade", "demo", "--clean",
                               str(root)], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "could not be removed completely" in done.stderr, done.stderr
        assert "not completely removed" in done.stdout, done.stdout
        assert "Traceback" not in done.stderr
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=False)
