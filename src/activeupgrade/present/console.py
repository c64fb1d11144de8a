"""What both consoles show, computed from API documents (no state of its own): the status
bar, the action buttons with their costs, the log tree and an entry's facts and output.

The web console's ``static/console.js`` produces the same wording when the event stream
updates a page; keep the two in step (the browser test compares them through the status
bar and buttons).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activeupgrade.activity import Entry
from activeupgrade.model.states import OperatorAction
from activeupgrade.present.progress import console_progress
from activeupgrade.units import human_bytes

TITLES = {
    OperatorAction.CHECK: "Check readiness",
    OperatorAction.SPLIT: "Split",
    OperatorAction.MERGE: "Merge",
    OperatorAction.CONFIRM: "Confirm",
    OperatorAction.COMMIT: "Commit",
    OperatorAction.ABORT: "Abort",
    OperatorAction.FINISH: "Finish",
    OperatorAction.RETRY: "Retry",
}
"""Button titles; the label adds "now: <cost>" or why the action is not allowed."""


def duplex_text(status: Mapping[str, Any]) -> str:
    """The duplex indicator: Duplex/Simplex and any pending resync."""
    text = "Duplex" if status.get("duplex") else "Simplex"
    pending = (status.get("facts") or {}).get("pending_resync") or {}
    if pending.get("bytes"):
        text += f" (resync pending: {human_bytes(float(pending['bytes']))})"
    return text


def progress(status: Mapping[str, Any]) -> tuple[float, str]:
    """Overall percent of the running request and a line saying where it is."""
    shown = console_progress(status)
    return float(shown["percent"]), str(shown["where"])


def status_bar(status: Mapping[str, Any]) -> dict[str, Any]:
    shown = console_progress(status)
    percent, where = float(shown["percent"]), str(shown["where"])
    return {
        "detail": shown["detail"],
        "upgrade": status.get("upgrade_state", "?"),
        "operational": status.get("operational_state", "?"),
        "partner": status.get("partner_state", "?"),
        "duplex": duplex_text(status),
        "percent": percent,
        "where": where,
        "config": status.get("config") or "(none: all adopted volumes)",
    }


POINT_OF_NO_RETURN = "point of no return"
"""What Commit is: once it begins, the original software can no longer be restored."""


ABORT_TO_CHECKPOINT = ("Abort now: {cost}. The applications restart on the original software "
                       "and the upgrade is discarded (`au abort --keep-data` keeps the live "
                       "data instead). Abort now?")
"""The question before an abort from Merge that returns data volumes to their checkpoint
(``{cost}``: the abort's cost, which says to when and where the writes since are kept)."""


def confirmation(action: OperatorAction, status: Mapping[str, Any], *,
                 keep_data: bool = False) -> str:
    """The question to ask before ``action`` is sent ("" when it needs none): Commit (the
    point of no return) and Abort from Merge (the applications restart on the original
    software) ask first, in both consoles and on the CLI. An abort that returns data
    volumes to their checkpoint says so (to when, and where the writes since are kept)."""
    if action is OperatorAction.COMMIT:
        return ("Commit is the point of no return: the old replicas are resynchronised from "
                "the upgraded ones and the original software can no longer be restored "
                "(Abort is no longer possible). Commit now?")
    if action is OperatorAction.ABORT and status.get("upgrade_state") == "Merge":
        cost = str((status.get("costs") or {}).get("abort", ""))
        if "checkpoint" in cost and not keep_data:
            return ABORT_TO_CHECKPOINT.replace("{cost}", cost)
        return ("Abort from Merge restarts the applications on the original software and "
                "discards the upgrade (what the applications wrote to data volumes is kept). "
                "Abort now?")
    return ""


def confirmations() -> dict[str, str]:
    """Every question ``confirmation`` asks, keyed ``action`` or ``action@State`` (the web
    console's script picks the one for the status it shows)."""
    from activeupgrade.model.states import UpgradeState

    out: dict[str, str] = {}
    for action in (OperatorAction.COMMIT, OperatorAction.ABORT):
        for state in UpgradeState:
            text = confirmation(action, {"upgrade_state": state.value})
            if text:
                out[f"{action.value}@{state.value}"] = text
    out[f"{OperatorAction.ABORT.value}@{UpgradeState.MERGE.value}#checkpoint"] = \
        ABORT_TO_CHECKPOINT
    return out


def button(action: OperatorAction, status: Mapping[str, Any]) -> dict[str, Any]:
    allowed = action.value in (status.get("allowed_actions") or [])
    title = TITLES[action]
    if allowed:
        cost = (status.get("costs") or {}).get(action.value, "")
        label = f"{title} now: {cost}" if cost else f"{title} now"
        if action is OperatorAction.COMMIT:
            label += f" ({POINT_OF_NO_RETURN})"
    else:
        label = (f"{title}: not allowed in {status.get('upgrade_state')} / "
                 f"{status.get('operational_state')}")
    return {"action": action.value, "title": title, "allowed": allowed, "label": label,
            "confirm": confirmation(action, status) if allowed else ""}


def action_buttons(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One button per operator action except Retry, enabled from ``allowed_actions``."""
    return [button(a, status) for a in OperatorAction if a is not OperatorAction.RETRY]


def retry_button(status: Mapping[str, Any]) -> dict[str, Any]:
    return button(OperatorAction.RETRY, status)


SIDE_WRITES_SHOWN = 50
"""Paths a console lists of what the Upgrade Side wrote outside the volumes (`au side
writes` lists them all)."""


def side_writes(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the Upgrade Side wrote outside the managed volumes (GET /side/writes), as both
    consoles show it before the merge: a summary and one line per path. Nothing of it is
    kept; ``shown`` is False when no isolated Upgrade Side exists."""
    if not doc or not doc.get("exists"):
        return {"shown": False, "summary": "", "lines": []}
    lines = [f"{w['change']:<9} {w['path']}" for w in doc.get("outside", [])]
    lines += [f"{w['change']:<9} {w['path']} (data volume scratch)" for w in doc.get("data", [])]
    more = len(lines) - SIDE_WRITES_SHOWN
    lines = lines[:SIDE_WRITES_SHOWN] + ([f"… and {more} more (au side writes)"]
                                         if more > 0 or doc.get("truncated") else [])
    return {"shown": True, "summary": str(doc.get("summary", "")), "lines": lines}


def tree_order(entries: list[Entry]) -> list[Entry]:
    """Entries in tree order: each followed by its children (entries arrive by id)."""
    ids = {e.id for e in entries}
    children: dict[int | None, list[Entry]] = {}
    for e in entries:
        parent = e.parent if e.parent in ids else None
        children.setdefault(parent, []).append(e)
    out: list[Entry] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        e = stack.pop()
        out.append(e)
        stack.extend(reversed(children.get(e.id, [])))
    return out


FACT_NAMES = {
    "exit": "Exit value", "exit_code": "Exit value", "returncode": "Exit value",
    "duration": "Duration (s)", "seconds": "Duration (s)", "elapsed": "Duration (s)",
    "argv": "Command", "file": "File", "user": "User", "timeout": "Timeout (s)",
    "step": "Step", "steps": "Steps", "run": "Run", "attempt": "Attempt",
    "request": "Request", "state": "Upgrade state", "action": "Action",
    "operation": "Operation", "id": "Operation id", "args": "Arguments",
    "volume": "Volume", "path": "Path", "paths": "Paths", "from": "From replica",
    "to": "To replica", "replica": "Replica", "folder": "Folder", "files": "Files",
    "count": "Count", "entries": "Entries", "checked": "Entries checked",
    "copied_files": "Files copied", "copied_bytes": "Bytes copied", "deleted": "Deleted",
    "scanned": "Entries scanned", "metadata_fixed": "Metadata fixed",
    "allowed_actions": "Allowed actions", "allowed_operations": "Allowed operations",
    "reason": "Reason", "pid": "Process id", "partner": "Partner state",
    "listen": "Listens on", "loopback": "Loopback only", "stream": "Stream",
    "missing": "Missing", "failed": "Failed", "ready": "Ready", "killed": "Killed",
    "wait": "Wait (s)", "control": "Control", "result": "Result", "facts": "Facts",
    "traceback": "Traceback", "lagging": "Changed since (resynced next time)",
    "differences": "Differences", "skipped": "Skipped", "already": "Already done",
}
"""The words for the detail keys entries carry; any other key is shown as it is."""


def _fact_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key.endswith("bytes") and isinstance(value, int | float):
        return f"{human_bytes(float(value))} ({int(value)} bytes)"
    if isinstance(value, list):
        return ", ".join(map(str, value)) if key != "argv" else " ".join(map(str, value))
    if isinstance(value, dict):
        return "; ".join(f"{FACT_NAMES.get(k, k)}: {_fact_text(k, v)}"
                         for k, v in value.items())
    return str(value)


def entry_facts(entry: Entry) -> list[tuple[str, str]]:
    """The entry's details as (name, value) rows in words: an error as its class, message
    and what to do; well-known keys named; values readable (bytes, lists, yes/no)."""
    rows: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    for key, value in sorted(entry.details.items()):
        if key == "error" and isinstance(value, dict):
            rows.append(("Error", f"{value.get('error', '')}: {value.get('message', '')}"))
            if value.get("hint"):
                rows.append(("What to do", str(value["hint"])))
            if value.get("exit_code") is not None:
                rows.append(("Exit code of au", str(value["exit_code"])))
            continue
        if key in FACT_NAMES:
            rows.append((FACT_NAMES[key], _fact_text(key, value)))
        else:
            rest.append((key.replace("_", " ").capitalize(), _fact_text(key, value)))
    return rows + rest


def entry_output(children: list[Entry]) -> dict[str, list[str]]:
    """A custom action's captured output, by stream (from its children's event ids)."""
    out: dict[str, list[str]] = {}
    for c in children:
        stream = str(c.details.get("stream") or c.event.rsplit(".", 1)[-1])
        if stream in ("stdout", "stderr"):
            out.setdefault(stream, []).append(c.message)
    return out
