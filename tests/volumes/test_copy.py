"""Where a resync writes a changed file: in place when nothing else uses the target file,
through a new inode when a process has it open or mapped (a program still running from a
replica that was live keeps the library it loaded), and never into an inode shared with
other hard links."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.verify import differences

MAPPER = """
import mmap, sys
with open(sys.argv[1], "rb") as fh:
    view = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
print("mapped", flush=True)
sys.stdin.readline()
print(bytes(view[:16]).decode(), flush=True)
"""


@pytest.fixture
def trees(tmp_path: Path) -> Iterator[tuple[Path, Path, Manifest]]:
    a, b, meta = tmp_path / "a", tmp_path / "b", tmp_path / "m"
    a.mkdir()
    meta.mkdir()
    for name in ("lib.so", "plain", "linked"):
        (a / name).write_bytes(b"old content " + name.encode() * 100)
    m = Manifest(meta)
    resync(a, b, m, src_is_a=True)
    yield a, b, m


def test_unused_file_is_overwritten_in_place(trees: tuple[Path, Path, Manifest]) -> None:
    a, b, m = trees
    before = os.lstat(b / "plain")
    (a / "plain").write_bytes(b"new and shorter")
    res = resync(a, b, m, src_is_a=True)
    after = os.lstat(b / "plain")
    assert res.copied_files == 1
    assert after.st_ino == before.st_ino  # the same inode, its blocks reused
    assert (b / "plain").read_bytes() == b"new and shorter"  # cut to the new size
    assert differences(a, b) == []


def test_mapped_file_gets_a_new_inode_and_the_mapping_keeps_its_bytes(
        trees: tuple[Path, Path, Manifest]) -> None:
    a, b, m = trees
    before = os.lstat(b / "lib.so")
    proc = subprocess.Popen([sys.executable, "-c", MAPPER, str(b / "lib.so")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "mapped"
        (a / "lib.so").write_bytes(b"NEW LIBRARY BYTES" * 50)
        resync(a, b, m, src_is_a=True)
        assert os.lstat(b / "lib.so").st_ino != before.st_ino
        assert (b / "lib.so").read_bytes() == (a / "lib.so").read_bytes()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "old content lib."
    finally:
        proc.kill()
        proc.wait()
    assert differences(a, b) == []


def test_file_with_other_links_in_the_target_is_not_written_through(
        trees: tuple[Path, Path, Manifest]) -> None:
    a, b, m = trees
    outside = b.parent / "outside"
    os.link(b / "linked", outside)  # a name outside the tree the resync sees
    (a / "linked").write_bytes(b"changed")
    resync(a, b, m, src_is_a=True)
    assert (b / "linked").read_bytes() == b"changed"
    assert outside.read_bytes().startswith(b"old content linked")
    assert differences(a, b) == []


def test_file_open_for_reading_is_not_written_in_place(
        trees: tuple[Path, Path, Manifest]) -> None:
    a, b, m = trees
    before = os.lstat(b / "plain")
    with open(b / "plain", "rb") as reader:
        (a / "plain").write_bytes(b"while someone reads")
        resync(a, b, m, src_is_a=True)
        assert reader.read(3) == b"old"
    assert os.lstat(b / "plain").st_ino != before.st_ino
    assert differences(a, b) == []


def _acl(*entries: tuple[int, int, int]) -> bytes:
    """A POSIX ACL in its extended-attribute form: version 2, then (tag, perm, id)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_new_files_do_not_keep_an_acl_inherited_from_the_target(tmp_path: Path) -> None:
    """A new file takes its directory's default ACL; the source has none, so the copy
    must not keep it (the resync learns which target folders have one)."""
    a, b, meta = tmp_path / "a", tmp_path / "b", tmp_path / "m"
    (a / "sub").mkdir(parents=True)
    meta.mkdir()
    (a / "sub" / "f").write_bytes(b"data")
    (b / "sub").mkdir(parents=True)
    nobody = 65534
    try:  # user_obj rwx, user nobody rw-, group_obj r-x, mask rwx, other r-x
        os.setxattr(b / "sub", "system.posix_acl_default",
                    _acl((0x01, 7, 0xFFFFFFFF), (0x02, 6, nobody), (0x04, 5, 0xFFFFFFFF),
                         (0x10, 7, 0xFFFFFFFF), (0x20, 5, 0xFFFFFFFF)))
    except OSError as exc:
        pytest.skip(f"no POSIX ACLs on this filesystem: {exc.strerror}")
    (b / "sub" / "probe").write_bytes(b"")
    assert "system.posix_acl_access" in os.listxattr(b / "sub" / "probe")  # really inherited
    (b / "sub" / "probe").unlink()
    resync(a, b, Manifest(meta), src_is_a=True)
    assert "system.posix_acl_access" not in os.listxattr(b / "sub" / "f")
    assert os.stat(b / "sub" / "f").st_mode == os.stat(a / "sub" / "f").st_mode
    assert differences(a, b) == []
