"""A resync stopped by the machine (a full disk) says what, where and what to do, and
keeps what it copied: after space is freed, the next resync finishes the job. It stops
before eating the reserve it leaves to the applications (``volumes/reserve.py``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from activeupgrade.errors import DiskFullError, VolumeError
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.verify import differences

from .helpers import FS_IMMUTABLE_FL, set_flags


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


def test_an_immutable_target_file_is_a_clear_error_and_the_resync_resumes(
        tmp_path: Path, needs_root: None) -> None:
    """A file made immutable in the target after it was copied (``chattr`` makes no
    change event: the tool meets it only when writing) stops the resync with what, where
    and what to do, not a traceback; cleared, the next resync finishes."""
    a, b, meta = tmp_path / "a", tmp_path / "b", tmp_path / "m"
    (a / "d").mkdir(parents=True)
    (a / "d" / "f").write_bytes(b"v1")
    meta.mkdir()
    resync(a, b, Manifest(meta), src_is_a=True)
    set_flags(b / "d" / "f", FS_IMMUTABLE_FL)
    try:
        (a / "d" / "f").write_bytes(b"v2, longer")
        with pytest.raises(VolumeError) as err:
            resync(a, b, Manifest(meta), src_is_a=True)
        assert str(b / "d" / "f") in err.value.message, err.value.message
        assert "chattr -i" in err.value.hint
    finally:
        set_flags(b / "d" / "f", 0)
    resync(a, b, Manifest(meta), src_is_a=True)
    assert differences(a, b) == []
