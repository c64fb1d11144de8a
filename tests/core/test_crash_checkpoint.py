"""Crash safety of rollback-safe data: the daemon is killed with SIGKILL at every boundary
of the checkpoint steps (and of the steps around them) of a split → merge → abort → finish
session and of the release at Commit, with a data volume that has ``checkpoint = true``.

After each kill a new daemon finds the request Broken ("interrupted …"), Retry brings the
session to its end, and: after the abort the data is the checkpoint's (what was written in
Merge is gone from the volume) and what was written after the checkpoint is in the
saved-aside folder; after the commit every write is kept; the replicas are identical.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.core.test_crash import Instance, boundaries, drive, finish_session, setup

__all__ = ["setup"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("needs_root")

ABORT_FROM_MERGE = ("split", "merge", "abort", "finish")
COMMIT_SESSION = ("split", "merge", "commit", "finish")
AROUND = ("checkpoint", "services.", "volumes.switch", "volumes.resync-abort")
"""Steps whose boundaries are crashed at (the others are covered by test_crash.py)."""


def configure(inst: Instance, system: Path, data: Path) -> None:
    cfg = inst.home / "configs" / "checkpoint.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f'[[volume]]\npath = "{system}"\nrole = "system"\n'
                   f'\n[[volume]]\npath = "{data}"\nrole = "data"\ncheckpoint = true\n'
                   '\n[upgrade_side]\nisolation = "directory"\n')
    inst.au("config", "load", str(cfg))


def saved_writes(home: Path) -> str:
    return "".join(p.read_text() for p in (home / "saved-writes").glob("*/*/files/orders"))


def test_kill_at_every_checkpoint_boundary_of_an_abort_from_merge(
    setup: tuple[Instance, Path, Path],
) -> None:
    inst, system, data = setup
    configure(inst, system, data)
    points = [p for p in boundaries(inst, ABORT_FROM_MERGE)
              if any(word in p for word in AROUND)]
    assert sum("checkpoint" in p for p in points) == 8, points  # presync, take, save, restore
    assert any("volumes.checkpoint-restore" in p for p in points), points
    for n, point in enumerate(points):
        def written(n: int = n) -> None:
            with open(data / "orders", "a") as fh:
                fh.write(f"order before merge {n}\n")

        def in_merge(n: int = n) -> None:
            with open(data / "orders", "a") as fh:
                fh.write(f"order after the checkpoint {n}\n")

        between: dict[str, object] = {"merge": written, "abort": in_merge}
        interrupted = drive(inst, ABORT_FROM_MERGE, point, between)
        assert interrupted, f"boundary {point} was never reached"
        finish_session(inst, ABORT_FROM_MERGE, interrupted, between, "retry")
        st = inst.status()
        assert st["upgrade_state"] == "Idle" and st["operational_state"] == "Ready", st
        orders = (data / "orders").read_text()
        assert f"order before merge {n}\n" in orders, point
        assert f"order after the checkpoint {n}" not in orders, point
        assert f"order after the checkpoint {n}\n" in saved_writes(inst.home), point
        inst.au("volume", "verify")


def test_kill_at_the_checkpoint_release_of_a_commit(setup: tuple[Instance, Path, Path]
                                                    ) -> None:
    inst, system, data = setup
    configure(inst, system, data)
    points = [p for p in boundaries(inst, COMMIT_SESSION) if "checkpoint" in p]
    assert len(points) == 6, points  # presync, take, release
    for n, point in enumerate(points):
        def in_merge(n: int = n) -> None:
            with open(data / "orders", "a") as fh:
                fh.write(f"order kept {n}\n")

        between: dict[str, object] = {"commit": in_merge}
        interrupted = drive(inst, COMMIT_SESSION, point, between)
        assert interrupted, f"boundary {point} was never reached"
        finish_session(inst, COMMIT_SESSION, interrupted, between, "retry")
        st = inst.status()
        assert st["upgrade_state"] == "Idle" and st["operational_state"] == "Ready", st
        assert f"order kept {n}\n" in (data / "orders").read_text(), point
        inst.au("volume", "verify")
    assert not (inst.home / "saved-writes").exists()


def test_saving_the_writes_aside_follows_no_link_and_opens_no_fifo(
    setup: tuple[Instance, Path, Path],
) -> None:
    """What an application made in Merge is saved as it is: a link to a root-only file as
    the link (never the file's content), a FIFO listed but not opened (it would block)."""
    inst, system, data = setup
    configure(inst, system, data)
    inst.au("split")
    inst.au("merge")
    (data / "secret").symlink_to("/etc/shadow")
    os.mkfifo(data / "queue")
    with open(data / "orders", "a") as fh:
        fh.write("order after the checkpoint\n")
    inst.au("abort", "--yes")
    st = inst.status()
    assert st["upgrade_state"] == "Abort" and st["operational_state"] == "Ready", st
    inst.au("finish")
    assert not (data / "secret").is_symlink() and not (data / "queue").exists()
    [saved] = (inst.home / "saved-writes").glob("*/*/writes.json")
    files = saved.parent / "files"
    assert (files / "secret").is_symlink() and os.readlink(files / "secret") == "/etc/shadow"
    assert not (files / "queue").exists()
    assert (files / "orders").read_text().endswith("order after the checkpoint\n")
    doc = json.loads(saved.read_text())
    assert {w["path"] for w in doc["created"]} >= {"secret", "queue"}
    assert [why for why in doc["not_copied"] if "queue" in why], doc["not_copied"]
    assert "not copied: queue (not a regular file)" in (saved.parent / "writes.txt").read_text()
