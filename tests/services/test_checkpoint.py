"""Rollback-safe data: Debian's Redis writing a checkpointed data volume through the merge.

A real writer (4 threads, through the keeper's proxy) writes into Redis, whose data folder
is a managed data volume with ``checkpoint = true``; a managed system volume is switched
at merge, so Redis really stops and starts. The checkpoint is taken at ExecuteMerge while
Redis is stopped. After the merge the writer goes on (writes since the checkpoint), then:

- abort from Merge (restore): Redis holds exactly the writes acknowledged before the
  checkpoint; the later ones are in the saved-aside folder, listed there, in the activity
  log and in the status;
- abort with keep_data: every acknowledged write is still there, nothing saved aside;
- commit: the checkpoint is released, every write is there, the session finishes duplex.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from activeupgrade.config.model import Config, Switchover, VolumeRole, VolumeSpec
from activeupgrade.engine.engine import Engine
from activeupgrade.model.states import OperationalState, OperatorAction, UpgradeState
from activeupgrade.platform.services.supervisor import Supervisor
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.platform.volumes.livepath import SYMLINK
from tests.actions.helpers import act, make_engine
from tests.support import wait_until

from .helpers import free_port
from .test_data import ONLY, redis_spec
from .writes import Report, Writes, stored


@dataclass
class Shop:
    engine: Engine
    data: Path
    port: int
    upstream: int


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    software = tmp_path / "etc-app"
    software.mkdir()
    (software / "VERSION").write_text("v1\n")
    data = Path(tempfile.mkdtemp(prefix="au-ckpt-", dir="/tmp")) / "redis"
    data.mkdir()
    port, upstream = free_port(), free_port()
    spec = replace(redis_spec(data, port, upstream), switchover=Switchover.STOP_START)
    cfg = Config(volumes=(VolumeSpec(str(software)),
                          VolumeSpec(str(data), VolumeRole.DATA, checkpoint=True)),
                 services=(spec,))
    engine, store = make_engine(tmp_path / "home", cfg, ONLY)
    adoption.adopt(engine.instance, store, str(software), VolumeRole.SYSTEM, mode=SYMLINK)
    adoption.adopt(engine.instance, store, str(data), VolumeRole.DATA, mode=SYMLINK)
    sup = Supervisor(engine.instance, store)
    sup.start(spec)
    yield Shop(engine, data, port, upstream)
    sup.shutdown(spec)
    shutil.rmtree(data.parent, ignore_errors=True)


def ok(engine: Engine, action: OperatorAction, **options: bool) -> None:
    if options:
        engine.submit(action, **options)
        st = engine.wait(180)
    else:
        st = act(engine, action, 180)
    assert st.operational_state is OperationalState.READY, st.reason


def merged_with_writes(shop: Shop) -> tuple[Report, float]:
    """Split and merge under the writer, then more writes after the checkpoint; returns
    the writer's report and the checkpoint's time."""
    writes = Writes("redis", "127.0.0.1", shop.port, threads=4).start()
    writes.wait_for(100)
    ok(shop.engine, OperatorAction.SPLIT)
    ok(shop.engine, OperatorAction.MERGE)
    vol = registry.require(shop.engine.store, str(shop.data))
    ck = vol.session["checkpoint"]
    assert ck["phase"] == "frozen" and ck["replica"] != vol.live()
    writes.wait_for(200)  # written to the upgraded Redis, after the checkpoint
    report = writes.stop()
    assert report.failed == [], report.failed[:3]
    return report, float(ck["at"])


def checkpoint_facts(engine: Engine) -> dict[str, object]:
    """The status's view of the one checkpoint, once it counts the writes since."""
    found: dict[str, object] = {}

    def counted() -> bool:
        view = engine.view()
        cks = view.facts.get("checkpoints") or []
        if cks and (cks[0].get("writes") or {}).get("files"):
            found.update(cks[0], cost=view.costs.get("abort", ""))
            return True
        return False

    wait_until(counted, 30, "the status to list the writes since the checkpoint", poll=0.2)
    return found


def test_abort_from_merge_returns_the_data_to_the_checkpoint(shop: Shop) -> None:
    report, at = merged_with_writes(shop)
    before = {int(s.server.split()[1]) for s in report.samples if s.ok and s.done < at}
    after = {int(s.server.split()[1]) for s in report.samples if s.ok and s.sent > at}
    assert before and after
    facts = checkpoint_facts(shop.engine)
    writes = facts["writes"]
    assert isinstance(writes, dict) and writes["changed"] + writes["created"] >= 1
    assert any("appendonly" in line for line in writes["lines"]), writes
    home = shop.engine.instance.home
    when = time.strftime("%H:%M", time.localtime(at))
    assert str(facts["cost"]).startswith(
        f"applications restart, data returns to the checkpoint of {when}")
    assert f"are kept in {home / 'saved-writes'}" in str(facts["cost"])

    ok(shop.engine, OperatorAction.ABORT)
    now = stored("redis", "127.0.0.1", shop.upstream)
    assert before <= now, sorted(before - now)[:10]
    assert not (after & now), sorted(after & now)[:10]  # the data is the checkpoint's
    # ... and the writes since are saved aside, whole, and listed.
    vol = registry.require(shop.engine.store, str(shop.data))
    ck = vol.session["checkpoint"]
    assert ck["phase"] == "restored" and vol.live() == ck["replica"]
    folder = Path(ck["saved"])
    assert folder.parent == home / "saved-writes" / shop.engine.status().session
    listing = json.loads((folder / "writes.json").read_text())
    assert listing["files"] == writes["files"] or listing["files"] >= 1
    saved = b"".join(p.read_bytes() for p in (folder / "files").rglob("*") if p.is_file())
    missing = [n for n in after if f"\r\n{n}\r\n".encode() not in saved]
    assert not missing, missing[:10]
    assert "appendonly" in (folder / "writes.txt").read_text()
    events = {e.event: e for e in shop.engine.log.entries()}
    assert str(folder) in events["volume.checkpoint.saved"].message
    assert events["volume.checkpoint.restored"]
    listed = shop.engine.view().facts.get("saved_writes") or []
    assert [s["folder"] for s in listed] == [str(folder)]
    ok(shop.engine, OperatorAction.FINISH)
    assert folder.is_dir()  # kept after the session
    assert sorted(os.listdir(folder)) == ["files", "writes.json", "writes.txt"]


@pytest.mark.parametrize("end", ["keep-data", "commit"])
def test_abort_keeping_the_data_and_commit_keep_every_write(shop: Shop, end: str) -> None:
    report, _ = merged_with_writes(shop)
    if end == "commit":
        ok(shop.engine, OperatorAction.COMMIT)
        assert shop.engine.status().upgrade_state is UpgradeState.COMMIT
    else:
        ok(shop.engine, OperatorAction.ABORT, keep_data=True)
    acked = {int(s.server.split()[1]) for s in report.samples if s.ok}
    now = stored("redis", "127.0.0.1", shop.upstream)
    assert acked <= now, sorted(acked - now)[:10]
    vol = registry.require(shop.engine.store, str(shop.data))
    assert vol.session["checkpoint"]["phase"] == "released"
    assert vol.session["checkpoint"]["writes_kept"] >= 1
    assert not (shop.engine.instance.home / "saved-writes").exists()
    events = [e.event for e in shop.engine.log.entries()]
    assert "volume.checkpoint.released" in events
    assert "volume.checkpoint.saved" not in events
    ok(shop.engine, OperatorAction.FINISH)
    assert registry.require(shop.engine.store, str(shop.data)).duplex
