"""What the consoles show, from status documents: buttons follow the state graph exactly."""

from __future__ import annotations

from activeupgrade.activity import Entry
from activeupgrade.model.graph import GRAPH
from activeupgrade.model.states import OperationalState, Severity, UpgradeState
from activeupgrade.present import console as pages


def status_for(state: UpgradeState, op: OperationalState) -> dict[str, object]:
    allowed = GRAPH.allowed(state, op)
    return {
        "upgrade_state": state.value, "operational_state": op.value,
        "allowed_actions": [a.value for a in allowed],
        "costs": {a.value: GRAPH.cost(a, state) for a in allowed},
        "partner_state": "None", "duplex": True, "facts": {}, "progress": {},
    }


def test_buttons_are_enabled_exactly_as_the_graph_allows_with_their_cost() -> None:
    for state in UpgradeState:
        for op in OperationalState:
            status = status_for(state, op)
            buttons = [*pages.action_buttons(status), pages.retry_button(status)]
            enabled = {b["action"] for b in buttons if b["allowed"]}
            assert enabled == set(status["allowed_actions"]), (state, op)
            for b in buttons:
                if b["allowed"]:
                    cost = f"{b['title']} now: {status['costs'][b['action']]}"
                    if b["action"] == "commit":
                        cost += " (point of no return)"
                    assert b["label"] == cost
                    asks = b["action"] == "commit" or (
                        b["action"] == "abort" and state is UpgradeState.MERGE)
                    assert bool(b["confirm"]) == asks, (b, state)
                else:
                    assert b["label"].endswith(f"not allowed in {state.value} / {op.value}")
    merge = status_for(UpgradeState.MERGE, OperationalState.READY)
    abort = next(b for b in pages.action_buttons(merge) if b["action"] == "abort")
    assert abort["label"] == "Abort now: applications restart"
    split = status_for(UpgradeState.SPLIT, OperationalState.BUSY)
    abort = next(b for b in pages.action_buttons(split) if b["action"] == "abort")
    assert abort["label"] == "Abort now: no disruption"


def test_status_bar_progress_and_duplex() -> None:
    s = status_for(UpgradeState.PREPARE_SPLIT, OperationalState.BUSY)
    s["progress"] = {"request": "PrepareSplit", "step": "volumes.sync-standby", "index": 1,
                     "total": 4, "percent": 50.0, "overall": 37.5, "bytes_done": 1024 * 1024,
                     "bytes_total": 4 * 1024 * 1024, "files_done": 10, "files_total": 40,
                     "bytes_per_second": 512 * 1024, "eta": 6.0, "text": "copying"}
    s["duplex"] = False
    s["facts"] = {"pending_resync": {"bytes": 3 * 1024 * 1024}}
    bar = pages.status_bar(s)
    assert bar["percent"] == 37.5
    assert bar["where"] == "PrepareSplit step 2/4: volumes.sync-standby"
    assert bar["detail"] == ("1.0 MiB of 4.0 MiB, 10 of 40 files, 512.0 KiB/s, 6s left"
                             " · copying")
    assert bar["duplex"] == "Simplex (resync pending: 3.0 MiB)"
    assert pages.status_bar(status_for(UpgradeState.IDLE, OperationalState.READY))["where"] == ""


def entry(i: int, parent: int | None, event: str = "x", **details: object) -> Entry:
    return Entry(i, parent, 0.0, "", "", "", "", Severity.INFO, event, f"m{i}", dict(details))


def test_tree_order_puts_children_under_their_parent() -> None:
    entries = [entry(1, None), entry(2, None), entry(3, 1), entry(4, 2), entry(5, 3),
               entry(6, 99)]
    assert [e.id for e in pages.tree_order(entries)] == [1, 3, 5, 2, 4, 6]


def test_action_output_and_facts() -> None:
    node = entry(1, None, "action.start", exit=0, duration=0.25, file="/opt/a")
    kids = [entry(2, 1, "action.output", stream="stdout"),
            entry(3, 1, "action.output", stream="stderr"), entry(4, 1, "action.done")]
    assert pages.entry_output(kids) == {"stdout": ["m2"], "stderr": ["m3"]}
    facts = dict(pages.entry_facts(node))
    assert facts["Exit value"] == "0" and facts["Duration (s)"] == "0.25"
