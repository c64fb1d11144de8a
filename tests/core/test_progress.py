"""Progress is honest: the engine's document never goes back, never reads 100 % before the
work ended, moves step by step for steps that report nothing, and carries what steps
count; a real adoption reports bytes and files through its passes."""

from __future__ import annotations

import os
from pathlib import Path

from activeupgrade.api.client import Client
from activeupgrade.engine.progress import RUNNING_CAP, ProgressTracker
from activeupgrade.engine.view import StatusView
from activeupgrade.instance import Instance
from activeupgrade.model.states import Operation
from activeupgrade.present.progress import progress_line
from tests.support import au, new_instance


def test_tracker_is_monotonic_and_never_complete_while_running() -> None:
    t = ProgressTracker()
    t.begin("ExecuteSplit", "side.start", 0, 4, "start the side")
    assert t.doc()["overall"] == 0.0
    t.report(100.0, "done already?", {})
    assert t.doc()["percent"] == RUNNING_CAP < 100
    t.report(10.0, "a new pass starts over", {"bytes_done": 5, "bytes_total": 50})
    doc = t.doc()
    assert doc["percent"] == RUNNING_CAP and doc["bytes_done"] == 5  # never back
    before = doc["overall"]
    t.begin("ExecuteSplit", "services.stop", 1, 4, "stop")
    assert t.doc()["overall"] >= before and t.doc()["overall"] >= 25.0
    # A step that reports nothing: the request still moves step by step.
    t.begin("ExecuteSplit", "side.ready", 3, 4, "")
    assert t.doc()["overall"] == 75.0
    t.report(200.0, "", {})
    assert t.doc()["overall"] == RUNNING_CAP
    t.begin("PrepareMerge", "x", 0, 2, "")  # the next request starts from 0
    assert t.doc()["overall"] == 0.0
    t.clear()
    assert t.doc() == {}


def test_plain_line_shows_counts_rate_and_time_left() -> None:
    view = StatusView.from_dict({
        "upgrade_state": "Idle", "operational_state": "Busy", "request": "Adopt",
        "progress": {"request": "Adopt", "step": "volume.adopt", "index": 0, "total": 1,
                     "percent": 42.0, "overall": 42.0, "bytes_done": 3 << 20,
                     "bytes_total": 8 << 20, "files_done": 10, "files_total": 30,
                     "bytes_per_second": 1 << 20, "eta": 75.0, "text": "copying"}})
    line = progress_line(view)
    assert "Adopt step 1/1: volume.adopt" in line and "42.0%" in line
    assert "3.0 MiB of 8.0 MiB, 10 of 30 files, 1.0 MiB/s, 1m15s left" in line, line


def test_a_real_adoption_reports_bytes_and_files(tmp_path: Path) -> None:
    home = new_instance(tmp_path / "home")
    tree = tmp_path / "tree"
    for d in range(30):
        folder = tree / f"d{d:02}"
        folder.mkdir(parents=True)
        for f in range(60):
            (folder / f"f{f}").write_bytes(os.urandom(2048))
    client = Client.for_instance(Instance(home))
    seen: list[StatusView] = []
    try:
        client.operate(Operation.ADOPT, {"path": str(tree), "role": "system"},
                       on_progress=seen.append)
        steps = [v.progress for v in seen if v.progress.step]
        assert steps, "no progress at all"
        percents = [p.percent for p in steps]
        assert percents == sorted(percents) and max(percents) < 100, percents
        overall = [p.overall for p in steps]
        assert overall == sorted(overall) and max(overall) < 100, overall
        counted = [p for p in steps if p.files_total]
        assert counted, [(p.percent, p.text) for p in steps]
        assert max(p.files_total for p in counted) >= 1800
        assert any("replica" in p.text for p in steps), [p.text for p in steps]
        # Plain lines off a terminal: one per real change, never 100 % before the end.
        r = au(home, "volume", "verify")
        assert r.returncode == 0, r.stderr
        assert "Verify step 1/1: volume.verify" in r.stderr, r.stderr
    finally:
        client.close()
        au(home, "volume", "release", str(tree).lstrip("/").replace("/", "-"))
        au(home, "daemon", "--stop")
