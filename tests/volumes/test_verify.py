"""Verify: strict between replicas; tolerant only of what the live side changed after the
resync began (the lag of a volume in use), never of a difference on the standby."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from activeupgrade.errors import VerifyMismatch
from activeupgrade.platform.volumes import tree
from activeupgrade.platform.volumes import verify as verify_mod
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.verify import (
    differences,
    trusted_by,
    verify,
    verify_settled,
)


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


def test_quick_verify_reads_only_what_the_manifest_does_not_vouch_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quick verify skips the contents of files whose signatures on both sides are the
    manifest's; any write since (on either side) moves a ctime and brings the file back
    into the byte comparison, so a changed content is still found. ``full``: every byte."""
    live, standby, meta = tmp_path / "live", tmp_path / "standby", tmp_path / "m"
    (live / "d").mkdir(parents=True)
    meta.mkdir()
    for i in range(20):
        (live / "d" / f"f{i}").write_text(f"row {i}\n")
    m = Manifest(meta)
    resync(live, standby, m, src_is_a=True)
    time.sleep(0.06)  # beyond any coarse clock's racy window: every entry vouched for
    resync(live, standby, m, src_is_a=True)
    read: list[str] = []
    real = tree.same_content

    def counting(a: str, b: str, chunk: int = 1 << 20) -> bool:
        read.append(os.path.basename(a))
        return real(a, b, chunk)

    monkeypatch.setattr(verify_mod, "same_content", counting)
    known, _ = m.load()
    assert verify(live, standby, trusted=trusted_by(known)) == 22
    assert read == []  # nothing written since the resync: no content read
    # same size and mtime, other content, on the standby: its ctime moved
    mtime = (standby / "d" / "f2").stat().st_mtime_ns
    (standby / "d" / "f2").write_text("ROW 2\n")
    os.utime(standby / "d" / "f2", ns=(0, mtime))
    with pytest.raises(VerifyMismatch) as err:
        verify(live, standby, trusted=trusted_by(known))
    assert "f2: content differs" in err.value.message
    assert read == ["f2"]
    read.clear()
    with pytest.raises(VerifyMismatch):
        verify(live, standby)  # full
    assert len(read) == 20
    # the manifest is oriented (A, B): the other order of trees is told
    read.clear()
    with pytest.raises(VerifyMismatch):
        verify(standby, live, trusted=trusted_by(known, first_is_a=False))
    assert read == ["f2"]


def test_au_volume_verify_means_duplex_as_the_status_does(tmp_path: Path) -> None:
    """A data volume written by its application in Idle: `au volume verify` is not a
    failure for the live side's lag (the pending resync) — only for a difference the
    standby does not owe to the live side (item 10 of the hostile-input issue)."""
    from activeupgrade.config.model import VolumeRole
    from activeupgrade.instance import Instance
    from activeupgrade.platform.volumes import adoption, registry, replica
    from activeupgrade.platform.volumes.livepath import SYMLINK

    from .helpers import engine_for

    data = tmp_path / "var" / "app"
    data.mkdir(parents=True)
    for i in range(10):
        (data / f"row{i}").write_text(f"row {i}\n")
    _engine, store = engine_for(tmp_path / "home")
    try:
        adoption.adopt(Instance(tmp_path / "home"), store, str(data), VolumeRole.DATA,
                       mode=SYMLINK)
        vol = registry.require(store, str(data))
        assert replica.verify_in_use(vol)[1] == []
        # the application writes on: a new row and an update of one
        (data / "row10").write_text("row 10\n")
        (data / "row3").write_text("row 3, updated\n")
        entries, lagging = replica.verify_in_use(vol)
        assert entries == 12  # the folder and its eleven rows, as the live side has them
        assert any(line.endswith(": row10") for line in lagging), lagging
        assert any(line.startswith("row3: ") for line in lagging), lagging
        # the standby written behind the tool's back: a real difference
        standby = vol.replica(registry.Volume.other(vol.live_or_fail()))
        old = (Path(standby) / "row5").stat()
        (Path(standby) / "row5").write_text("ROW 5\n")
        os.utime(Path(standby) / "row5", ns=(old.st_atime_ns, old.st_mtime_ns))
        with pytest.raises(VerifyMismatch) as err:
            replica.verify_in_use(vol, full=True)
        assert "row5" in err.value.message and "row10" not in err.value.message
    finally:
        store.close()


def test_a_wide_tree_is_listed_with_few_descriptors(tmp_path: Path) -> None:
    """A folder of 3,000 folders is listed and verified with a limit of 256 open files
    (a listing holds the descriptors of the directories on the current path only)."""
    for i in range(3000):
        (tmp_path / "a" / "wide" / f"d{i}").mkdir(parents=True)
    (tmp_path / "a" / "wide" / "d7" / "f").write_bytes(b"x")
    subprocess.run(["cp", "-a", str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))\n"
        "from activeupgrade.platform.volumes import tree, verify\n"
        "listed = tree.listing(sys.argv[1])\n"
        "print(len(listed), verify.differences(sys.argv[1], sys.argv[2]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a"),
                           str(tmp_path / "b")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3003", "[]"]
