"""Sparse files stay sparse through every resync path: a file new on the target, a file
overwritten in place, and the first copy into an empty replica (cp groups, as root).
Allocation is compared through ``st_blocks``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.verify import differences

GIB = 1 << 30
SLACK = 64 * 1024
"""Allocated bytes a copy may have beyond its source's (filesystem metadata blocks)."""


def _sparse(path: Path, size: int, at: int) -> None:
    """A file of ``size`` bytes with 4 KiB of data at ``at``, the rest holes."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        fh.seek(at)
        fh.write(os.urandom(4096))


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def _extents(path: Path) -> list[tuple[int, int, bytes]]:
    """The data extents of ``path`` (start, end, their bytes)."""
    out = []
    with open(path, "rb") as fh:
        fd, off, size = fh.fileno(), 0, os.fstat(fh.fileno()).st_size
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            out.append((data, hole, os.pread(fd, hole - data, data)))
            off = hole
    return out


def _assert_as_sparse(src: Path, dst: Path) -> None:
    """Same size, same data where the source has data, holes where it has holes (so
    the same content, without reading a gigabyte of zeros)."""
    assert _allocated(src) < 1 << 20, "the source is not sparse here"
    assert os.stat(dst).st_size == os.stat(src).st_size
    assert _extents(dst) == _extents(src)
    assert _allocated(dst) <= _allocated(src) + SLACK, (
        f"{dst.name}: {_allocated(dst)} bytes allocated for a source of {_allocated(src)}")


def test_resync_keeps_a_1_gib_sparse_file_sparse(tmp_path: Path) -> None:
    """Issue 14.11: an abort's resync turned a 1 GiB sparse file (4 KiB allocated) into
    1.1 GiB allocated. New files and files overwritten in place keep their holes."""
    a, b, meta = tmp_path / "a", tmp_path / "b", tmp_path / "m"
    a.mkdir()
    b.mkdir()
    meta.mkdir()
    (a / "keep").write_bytes(b"so that the target is not empty")
    (a / "rewritten").write_bytes(os.urandom(256 << 10))
    state = SyncState()
    try:
        resync(a, b, Manifest(meta), src_is_a=True, state=state)
        _sparse(a / "disk.img", GIB, GIB // 2)
        _sparse(a / "rewritten", GIB, GIB - 4096)  # was dense: in place over its blocks
        res = resync(a, b, Manifest(meta), src_is_a=True, state=state)
        assert res.copied_files == 2
        _assert_as_sparse(a / "disk.img", b / "disk.img")
        _assert_as_sparse(a / "rewritten", b / "rewritten")
        assert differences(a, b, content=False) == []
        # and back again (abort: the other direction, over the sparse copies)
        _sparse(b / "disk.img", GIB, 4096)
        resync(b, a, Manifest(meta), src_is_a=False, state=state)
        _assert_as_sparse(b / "disk.img", a / "disk.img")
        assert differences(a, b, content=False) == []
    finally:
        state.close()


def test_first_copy_keeps_sparse_files_sparse(tmp_path: Path, needs_root: None) -> None:
    a, b, meta = tmp_path / "a", tmp_path / "b", tmp_path / "m"
    (a / "sub").mkdir(parents=True)
    meta.mkdir()
    _sparse(a / "sub" / "disk.img", GIB, 12345 * 4096)
    resync(a, b, Manifest(meta), src_is_a=True)
    _assert_as_sparse(a / "sub" / "disk.img", b / "sub" / "disk.img")
    assert differences(a, b, content=False) == []


@pytest.mark.parametrize("size", [4096, 3 * 4096 + 17])
def test_file_ending_in_data_or_hole(tmp_path: Path, size: int) -> None:
    """Small edge cases: the data at the very end, a size not a multiple of the block."""
    a, b, meta = tmp_path / "a", tmp_path / "b", tmp_path / "m"
    a.mkdir()
    b.mkdir()
    meta.mkdir()
    (a / "x").write_bytes(b"x")
    resync(a, b, Manifest(meta), src_is_a=True)
    with open(a / "f", "wb") as fh:
        fh.truncate(size + (8 << 20))
        fh.seek(8 << 20)
        fh.write(b"tail" * (size // 4))
    resync(a, b, Manifest(meta), src_is_a=True)
    assert (b / "f").read_bytes() == (a / "f").read_bytes()
    _assert_as_sparse(a / "f", b / "f")
