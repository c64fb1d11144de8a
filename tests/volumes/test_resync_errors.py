"""A resync stopped by the machine (a full disk) says what, where and what to do, and
keeps what it copied: after space is freed, the next resync finishes the job. It stops
before eating the reserve it leaves to the applications (``volumes/reserve.py``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from activeupgrade.errors import DiskFullError
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.verify import differences


def test_full_disk_is_a_clear_error_and_the_resync_resumes(tmp_path: Path,
                                                          needs_root: None) -> None:
    a, small, meta = tmp_path / "a", tmp_path / "small", tmp_path / "m"

    def grow(first: int, count: int) -> None:
        for i in range(first, first + count):
            (a / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
            (a / f"d{i % 4}" / f"f{i}").write_bytes(os.urandom(64 << 10))

    grow(0, 20)
    small.mkdir()
    meta.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "au-test", str(small)], check=True)
    try:
        b = small / "b"
        resync(a, b, Manifest(meta), src_is_a=True)  # 1.25 MiB: fits, the reserve kept
        grow(20, 40)  # 2.5 MiB more: it would eat the applications' last free bytes
        with pytest.raises(DiskFullError) as err:
            resync(a, b, Manifest(meta), src_is_a=True)
        assert str(b) in err.value.message and "free for the applications" in err.value.message
        assert "Free space" in err.value.hint
        assert len([f for d in b.iterdir() for f in d.iterdir()]) == 20  # stopped before
        left = os.statvfs(small)
        assert left.f_bavail * left.f_frsize >= err.value.details["reserve"]
        subprocess.run(["mount", "-o", "remount,size=16m", str(small)], check=True)
        res = resync(a, b, Manifest(meta), src_is_a=True)
        assert differences(a, b) == []
        assert res.copied_files == 40  # what was copied before was kept
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
