"""A resync stopped by the machine (a full disk) says what, where and what to do, and
keeps what it copied: after space is freed, the next resync finishes the job."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from activeupgrade.errors import VolumeError
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.verify import differences


def test_full_disk_is_a_clear_error_and_the_resync_resumes(tmp_path: Path,
                                                          needs_root: None) -> None:
    a, small, meta = tmp_path / "a", tmp_path / "small", tmp_path / "m"
    for i in range(40):
        (a / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (a / f"d{i % 4}" / f"f{i}").write_bytes(os.urandom(64 << 10))
    small.mkdir()
    meta.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "au-test", str(small)], check=True)
    try:
        b = small / "b"
        with pytest.raises(VolumeError) as err:
            resync(a, b, Manifest(meta), src_is_a=True)
        assert "No space left on device" in err.value.message
        assert str(b) in err.value.message
        assert err.value.hint is not None and "Free space" in err.value.hint
        subprocess.run(["mount", "-o", "remount,size=16m", str(small)], check=True)
        res = resync(a, b, Manifest(meta), src_is_a=True)
        assert differences(a, b) == []
        assert res.copied_files < 40  # what was copied before the disk filled was kept
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
