"""A submount carried onto a replica's tree stays out of the replica's own folder, also
where mounts are shared (systemd makes ``/`` shared: a booted host's replicas live there).

Found on a booted Debian host: nspawn's single-file bind on ``/etc/localtime`` carried onto
replica B appeared in B's own folder too (a clone of a shared mount is its peer), read-only,
and the next resync into B stopped there with "Read-only file system".
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.platform.volumes import mounts

from .helpers import unmount_under


@pytest.fixture
def shared(tmp_path: Path, needs_root: None) -> Iterator[Path]:
    base = tmp_path / "base"
    base.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "au-test", str(base)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(base)], check=True)
        yield base
    finally:
        unmount_under(tmp_path)


def test_a_carried_submount_does_not_land_in_the_source(shared: Path, tmp_path: Path) -> None:
    replica_b = shared / "b"
    replica_b.mkdir()
    (replica_b / "localtime").write_text("b\n")
    live = shared / "live"
    live.mkdir()
    (live / "localtime").write_text("original\n")
    zone = tmp_path / "zone"
    zone.write_text("the container's zone\n")
    subprocess.run(["mount", "--bind", str(zone), str(live / "localtime")], check=True)

    tree = mounts.assemble(str(replica_b), [(str(live / "localtime"), "localtime")])
    try:
        mounts.move(tree, str(live))
    finally:
        os.close(tree)
    # The live path shows B with the bind carried on top of B's file …
    assert (live / "localtime").read_text() == "the container's zone\n"
    # … and B's own folder has its own file, not a mount: a resync can write it.
    assert not mounts.mounted(str(replica_b / "localtime"))
    assert (replica_b / "localtime").read_text() == "b\n"
    (replica_b / "localtime").write_text("resynced\n")
