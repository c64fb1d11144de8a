"""A resync killed with SIGKILL in the middle resumes without redoing finished work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.verify import differences

FILES = 12_000

CHILD = """
import sys
from activeupgrade.platform.volumes.manifest import Journal, Manifest
Journal.PERIOD = 0.05  # journal writes every 50 ms (1 s in service): several before the kill
from activeupgrade.platform.volumes.resync import resync
from pathlib import Path
resync(sys.argv[1], sys.argv[2], Manifest(Path(sys.argv[3])), src_is_a=True, workers=1)
"""


def test_killed_resync_resumes(tmp_path: Path) -> None:
    src, dst, meta = tmp_path / "src", tmp_path / "dst", tmp_path / "meta"
    meta.mkdir()
    for i in range(FILES):
        d = src / f"d{i // 200}"
        if i % 200 == 0:
            d.mkdir(parents=True)
        (d / f"f{i}").write_bytes(os.urandom(2048))
    time.sleep(0.1)  # out of the coarse-clock window: finished entries are journaled
    journal = meta / "resync.journal"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(src), str(dst), str(meta)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if journal.exists() and journal.stat().st_size > 0:
            break
        time.sleep(0.002)
    assert child.poll() is None, "the resync finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (meta / "manifest.json").exists()  # it really stopped in the middle
    res = resync(src, dst, Manifest(meta), src_is_a=True)
    assert res.resumed > 0
    assert res.copied_files < FILES  # work finished before the kill was not redone
    # entries copied after the last journal write are compared, not copied again
    assert res.copied_files + res.resumed + res.compared_files >= FILES
    assert differences(src, dst) == []
