"""Overlap switchover and the health gate at merge, through the real engine, under load.

The shop of ``test_switchover`` (its software on a real managed system volume, VERSION v1
on the original replica, v2 written into the Upgrade Side's replica):

- with ``switchover = "overlap"`` the upgraded shop answers before the original one gets its
  SIGTERM: the first v2 answer comes before the last v1 answer, no request fails, at merge
  and at abort from merge;
- an upgrade whose shop never becomes healthy (it answers 503): ExecuteMerge rolls the
  applications back to the original software by itself and is Broken with the reason;
  clients are served by the original software again, and Abort ends the session there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from activeupgrade.config.model import Readiness, Switchover
from activeupgrade.model.states import OperationalState, OperatorAction, UpgradeState
from tests.actions.helpers import act

from .test_switchover import Shop, run, shop, split_and_upgrade, switchovers, versions

__all__ = ["shop"]


def overlapping(shop: Shop) -> None:
    # The new instance says READY=1 (sd_notify): the health probe alone could be answered
    # by the old one through the shared socket.
    shop.spec = replace(shop.spec, switchover=Switchover.OVERLAP, ready=Readiness.NOTIFY)
    shop.engine.platform.cfg = replace(  # type: ignore[attr-defined]
        shop.engine.platform.cfg, services=(shop.spec,))  # type: ignore[attr-defined]


def test_overlap_merge_and_abort_serve_throughout(shop: Shop) -> None:
    overlapping(shop)
    load = split_and_upgrade(shop)
    run(shop, OperatorAction.MERGE)
    load.wait_for(200)
    after_merge = load.stop()
    assert after_merge.failed == [], after_merge.failed[:3]
    assert versions(after_merge) == ["v1", "v2"]
    _, v1_last = after_merge.first_and_last("v1")
    v2_first, _ = after_merge.first_and_last("v2")
    assert v2_first < v1_last  # both served for a moment: the old one stopped after
    [sw] = switchovers(shop.engine)
    assert not sw["killed"]
    entries = [e.event for e in shop.engine.log.entries()]
    assert "service.stop.deferred" in entries and "service.retired" in entries

    load = type(load)("127.0.0.1", shop.port, threads=8).start()
    load.wait_for(100)
    run(shop, OperatorAction.ABORT)
    load.wait_for(200)
    after_abort = load.stop()
    assert after_abort.failed == [], after_abort.failed[:3]
    assert versions(after_abort) == ["v2", "v1"]
    assert after_abort.first_and_last("v1")[0] < after_abort.first_and_last("v2")[1]
    run(shop, OperatorAction.FINISH)


def test_sick_upgrade_rolls_back_to_the_original_by_itself(shop: Shop, tmp_path: Path) -> None:
    load = split_and_upgrade(shop)
    (shop.upgrade_replica() / "VERSION").write_text("sick-v2\n")  # runs, never healthy
    shop.spec = replace(shop.spec, start_timeout=2.0)
    shop.engine.platform.cfg = replace(  # type: ignore[attr-defined]
        shop.engine.platform.cfg, services=(shop.spec,))  # type: ignore[attr-defined]
    st = act(shop.engine, OperatorAction.MERGE)
    assert st.operational_state is OperationalState.BROKEN
    assert "services.start:shop" in st.reason and "rolled back" in st.reason
    assert "not healthy" in st.reason
    # The original software serves again, without an operator.
    assert (shop.software / "VERSION").read_text() == "v1\n"
    status = shop.supervisor().status(shop.spec)
    assert status.running
    load.wait_for(200)
    rolled = load.stop()
    # Whatever failed was answered by the sick version while it was on trial; the last
    # answers all come from the original software.
    assert all("503" in s.error for s in rolled.failed), rolled.failed[:3]
    tail = sorted(rolled.samples, key=lambda s: s.done)[-100:]
    assert all(s.ok and s.server.split()[0] == "v1" for s in tail)
    assert versions(rolled)[-1] == "v1" and versions(rolled)[0] == "v1"
    events = [e.event for e in shop.engine.log.entries()]
    assert "service.rollback.done" in events
    # A retry would serve the upgrade from the original replicas: refused.
    st = act(shop.engine, OperatorAction.RETRY)
    assert st.operational_state is OperationalState.BROKEN
    assert "rolled back" in st.reason and st.attempt == 2
    # Abort ends the session on the original software, which keeps serving.
    load = type(load)("127.0.0.1", shop.port, threads=4).start()
    run(shop, OperatorAction.ABORT)
    load.wait_for(100)
    report = load.stop()
    assert report.failed == [] and versions(report) == ["v1"]
    assert shop.supervisor().status(shop.spec).pid == status.pid
    run(shop, OperatorAction.FINISH)
    assert shop.engine.status().upgrade_state is UpgradeState.IDLE


def test_sick_upgrade_in_overlap_never_stops_the_original(shop: Shop) -> None:
    """Overlap: the original instance serves throughout; the sick one is stopped, and the
    instance answering afterwards is the very process that answered before the merge."""
    overlapping(shop)
    shop.spec = replace(shop.spec, start_timeout=2.0)
    shop.engine.platform.cfg = replace(  # type: ignore[attr-defined]
        shop.engine.platform.cfg, services=(shop.spec,))  # type: ignore[attr-defined]
    original = shop.supervisor().status(shop.spec).pid
    load = split_and_upgrade(shop)
    (shop.upgrade_replica() / "VERSION").write_text("sick-v2\n")
    st = act(shop.engine, OperatorAction.MERGE)
    assert st.operational_state is OperationalState.BROKEN and "rolled back" in st.reason
    status = shop.supervisor().status(shop.spec)
    assert status.pid == original and status.running
    load.wait_for(200)
    report = load.stop()
    assert all("503" in s.error for s in report.failed), report.failed[:3]
    tail = sorted(report.samples, key=lambda s: s.done)[-100:]
    assert all(s.ok and s.server == f"v1 {original}" for s in tail)
    assert (shop.software / "VERSION").read_text() == "v1\n"
    run(shop, OperatorAction.ABORT)
    assert shop.supervisor().status(shop.spec).pid == original
    run(shop, OperatorAction.FINISH)
