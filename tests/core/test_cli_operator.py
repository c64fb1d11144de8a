"""The operator's CLI through its entry point, against a real daemon: the guard rails of
commit and abort from Merge without a terminal, the activity log from its end (--tail,
--since, -f), history, status --watch, ISO 8601 times, NO_COLOR, cancel, the plain
progress display, and metrics."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from activeupgrade.api.client import Client
from activeupgrade.cli.log import parse_since
from activeupgrade.instance import Instance
from tests.support import au, new_instance, wait_until


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = new_instance(tmp_path / "home")
    yield h
    au(h, "daemon", "--stop")


def popen(home: Path, *args: str) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen([sys.executable, "-m", "activeupgrade", *args], text=True,
                            env={**os.environ, "AU_HOME": str(home)},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_commit_and_abort_from_merge_need_yes_without_a_terminal(home: Path) -> None:
    assert au(home, "split").returncode == 0
    assert au(home, "merge").returncode == 0
    for verb in ("commit", "abort"):
        r = au(home, verb, "--no-confirm-flag")
        assert r.returncode == 2, (verb, r.stderr)
        assert f"`au {verb}` needs --yes when it cannot ask" in r.stderr
        assert f"Run `au {verb} --yes` to confirm." in r.stderr
    s = json.loads(au(home, "status", "--json").stdout)
    assert (s["upgrade_state"], s["operational_state"]) == ("Merge", "Ready")  # nothing sent
    assert "point of no return" in au(home, "commit", "--help").stdout
    r = au(home, "commit", "--no-confirm-flag", "--yes")
    assert r.returncode == 0, r.stderr
    assert au(home, "finish").returncode == 0
    # Abort from Split costs nothing: it does not ask.
    assert au(home, "split").returncode == 0
    assert au(home, "abort", "--no-confirm-flag").returncode == 0
    assert au(home, "finish").returncode == 0

    rows = json.loads(au(home, "history", "--json").stdout)
    assert [r["outcome"] for r in rows] == ["aborted", "committed"]
    for r in rows:
        assert r["ended"] is not None and r["seconds"] >= 0 and r["broken"] == 0
        assert datetime.fromisoformat(r["started_time"]).utcoffset() is not None
    text = au(home, "history", env={"NO_COLOR": "1"}).stdout
    assert "committed" in text and "aborted" in text and "\033[" not in text


def test_log_tail_since_and_follow_from_the_end(home: Path) -> None:
    for _ in range(2):
        assert au(home, "check").returncode in (0, 60)
    everything = json.loads(au(home, "log", "--json").stdout)
    assert len(everything) > 10
    tail = json.loads(au(home, "log", "--json", "--tail", "3").stdout)
    assert [e["id"] for e in tail] == [e["id"] for e in everything[-3:]]
    assert json.loads(au(home, "log", "--json", "--limit", "3").stdout) == tail
    assert len(json.loads(au(home, "log", "--json", "--since", "1h").stdout)) == len(everything)
    assert json.loads(au(home, "log", "--json", "--since", "2999-01-01T00:00").stdout) == []
    bad = au(home, "log", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
    for e in everything[-3:]:
        assert datetime.fromisoformat(e["time"]).utcoffset() is not None

    # -f starts at the end: the first line it prints is newer than anything before it.
    last = everything[-1]["id"]
    follower = popen(home, "log", "-f", "--json")
    lines: queue.Queue[str] = queue.Queue()
    try:
        assert follower.stdout is not None
        reader = threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout],
                                  daemon=True)
        reader.start()
        wait_until(lambda: Client.for_instance(Instance(home), start=False).alive(), 30,
                   "the daemon")
        # The follower may take its place after a check already ended: new entries until
        # it prints one (each check writes several).
        first: dict[str, object] = {}
        for _ in range(30):
            assert au(home, "check").returncode in (0, 60)
            with contextlib.suppress(queue.Empty):
                first = json.loads(lines.get(timeout=5))
                break
        assert first, "au log -f printed nothing while checks ran"
        assert int(str(first["id"])) > last, (first, last)
    finally:
        follower.terminate()
        follower.wait(timeout=30)


def test_parse_since() -> None:
    now = 1_000_000.0
    assert parse_since("10m", now) == now - 600
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1d", now) == now - 86400
    assert parse_since("90s", now) == now - 90
    assert parse_since("2025-03-01T14:00:00+00:00") == datetime.fromisoformat(
        "2025-03-01T14:00:00+00:00").timestamp()


def test_status_watch_json_and_cancel_with_nothing_running(home: Path) -> None:
    watcher = popen(home, "status", "--watch", "--json")
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())
        assert first["upgrade_state"] == "Idle"
        assert datetime.fromisoformat(first["updated_time"]).utcoffset() is not None
        assert au(home, "check").returncode in (0, 60)
        seen = [json.loads(watcher.stdout.readline()) for _ in range(2)]
        assert any(s["operational_state"] == "Busy" or s["action"] == "check" for s in seen)
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)
    r = au(home, "cancel")
    assert r.returncode == 4 and "nothing is running to cancel" in r.stderr


def test_plain_progress_off_a_terminal(home: Path) -> None:
    r = au(home, "split")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if " step " in ln]
    assert lines, r.stderr
    percents = [float(ln.split("] ")[1].split("%")[0]) for ln in lines if "] " in ln]
    assert percents and percents == sorted(percents) and max(percents) < 100, lines
    assert any("ExecuteSplit step" in ln for ln in lines), lines
    assert au(home, "abort").returncode == 0 and au(home, "finish").returncode == 0


def test_completion_and_manpage_commands(home: Path) -> None:
    r = au(home, "completion", "bash")
    assert r.returncode == 0 and "complete -o filenames -F _au au" in r.stdout
    r = au(home, "manpage", "--date", "2025-01-01")
    assert r.returncode == 0 and r.stdout.startswith('.TH AU 1 "2025-01-01"')
