"""Verify: strict between replicas; tolerant only of what the live side changed after the
resync began (the lag of a volume in use), never of a difference on the standby."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from activeupgrade.errors import VerifyMismatch
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.verify import differences, verify, verify_settled


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    live, standby, meta = tmp_path / "live", tmp_path / "standby", tmp_path / "m"
    (live / "d").mkdir(parents=True)
    meta.mkdir()
    for i in range(20):
        (live / "d" / f"f{i}").write_text(f"row {i}\n")
    os.setxattr(live / "d" / "f1", "user.tag", b"x")
    resync(live, standby, Manifest(meta), src_is_a=True)
    return live, standby


def test_verify_finds_every_kind_of_difference(tmp_path: Path) -> None:
    live, standby = _pair(tmp_path)
    assert verify(live, standby) == 22
    (standby / "d" / "f2").write_text("ROW 2\n")  # same size, other content
    os.utime(standby / "d" / "f2", ns=(0, (live / "d" / "f2").stat().st_mtime_ns))
    os.chmod(standby / "d" / "f3", 0o600)
    os.setxattr(standby / "d" / "f1", "user.tag", b"y")
    (standby / "extra").write_text("")
    found = differences(live, standby)
    assert any("f2: content differs" in d for d in found)
    assert any("f3: mode" in d for d in found)
    assert any("f1: extended attributes" in d for d in found)
    assert any("extra" in d for d in found)
    with pytest.raises(VerifyMismatch):
        verify(live, standby)


def test_settled_verify_tolerates_only_live_changes_after_the_resync(tmp_path: Path) -> None:
    live, standby = _pair(tmp_path)
    since = time.time_ns()
    (live / "d" / "f4").write_text("row 4 updated by the application\n")
    (live / "d" / "new").write_text("appended\n")
    (live / "d" / "f5").unlink()
    checked, lagging = verify_settled(live, standby, since)
    assert len(lagging) >= 3 and checked > 0
    (standby / "d" / "f6").write_text("damaged standby\n")
    with pytest.raises(VerifyMismatch):
        verify_settled(live, standby, since)
