"""The process groups of running custom actions, recorded so that none outlives a crash.

Each action runs in its own process group (``proc.run``). While it runs, its group id,
the start time of its first process and the boot it runs in are a document of the store
(namespace ``action-groups``); the document goes when the action ends. When the daemon
starts after a crash, every group still recorded is killed before anything else (before
the interrupted request can be retried): a Retry never runs a second copy beside the
first. A group is only killed when it is the recorded one: its leader has the recorded
start time, or (the leader gone) every process left in it started after the action did —
a reused group id of an unrelated later process group is left alone only if the leader
shows it (the usual case after pid reuse).
"""

from __future__ import annotations

import signal
import time
from typing import Any

from activeupgrade import proc
from activeupgrade.store.db import Store

NAMESPACE = "action-groups"
"""Store namespace: one document per running action (key: session and log entry)."""
GRACE = 5.0
"""Seconds a leftover group is given to disappear after SIGKILL."""


def boot_id() -> str:
    """This boot's id (a reboot ends every process: nothing recorded before is left)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def record(store: Store, key: str, pgid: int, action: str, side: str) -> None:
    store.put_doc(NAMESPACE, key, {"pgid": pgid, "started": proc.start_time(pgid),
                                   "boot": boot_id(), "action": action, "side": side,
                                   "at": time.time()})


def forget(store: Store, key: str) -> None:
    store.delete_doc(NAMESPACE, key)


def _ours(doc: dict[str, Any]) -> list[int]:
    """The processes of the recorded group that are still the action's."""
    pgid, started = int(doc.get("pgid", 0)), doc.get("started")
    if pgid <= 1 or doc.get("boot") != boot_id():
        return []
    members = proc.group_members(pgid)
    if not members:
        return []
    if pgid in members:  # the leader: it must be the very process recorded
        return members if started is not None and proc.start_time(pgid) == started else []
    if started is None:
        return []
    times = [proc.start_time(m) for m in members]
    return members if all(t is not None and t >= started for t in times) else []


def kill_leftovers(store: Store) -> list[str]:
    """Kill every recorded action group still running (after a crash of the daemon);
    returns one line per group, for the activity log."""
    lines = []
    for key, doc in store.docs(NAMESPACE).items():
        if not isinstance(doc, dict):
            forget(store, key)
            continue
        members = _ours(doc)
        if members:
            pgid = int(doc["pgid"])
            proc.kill_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + GRACE
            while proc.group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            lines.append(f"action {doc.get('action')} on the {doc.get('side')} Side was still "
                         f"running after the daemon stopped: its process group {pgid} "
                         f"({len(members)} process(es)) was killed")
        forget(store, key)
    return lines
