"""The confirmation window after merge (SPEC §12, ``[merge] confirm_within``).

ExecuteMerge's last step opens it: a durable document in the store (namespace
``confirm-window``, key ``<session>``) with its deadline. While it is open the operator
confirms with the Confirm action (``au confirm``, the consoles' Confirm button or key) or
with Commit. The daemon looks at it twice a second (``Engine.expire_confirmation``): once the
deadline passed in Merge with nothing running, the window is marked expired, the reason is
logged and the abort from Merge starts, as if the operator had asked for it. The deadline
survives a restart or a crash of the daemon: the first look after the restart aborts.
"""

from __future__ import annotations

import time
from typing import Any

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.model.states import Severity
from activeupgrade.store.db import Store
from activeupgrade.units import human_left

NAMESPACE = "confirm-window"
"""Store namespace: ``<session>`` → ``seconds``, ``opened``, ``deadline`` and ``outcome``
(``open``, ``confirmed``, ``committed`` or ``expired``) with its time (``ended``)."""


def window(store: Store, session: str) -> dict[str, Any]:
    """The confirmation window of ``session`` ({} when none was opened)."""
    doc = store.get_doc(NAMESPACE, session) if session else None
    return dict(doc) if isinstance(doc, dict) else {}


def is_open(store: Store, session: str) -> bool:
    return window(store, session).get("outcome") == "open"


def end(store: Store, session: str, outcome: str) -> dict[str, Any]:
    """Mark the open window of ``session`` ended with ``outcome``; returns it."""
    doc = window(store, session)
    if doc.get("outcome") == "open":
        doc.update(outcome=outcome, ended=time.time())
        store.put_doc(NAMESPACE, session, doc)
    return doc


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def shown(store: Store, session: str, now: float | None = None) -> dict[str, Any] | None:
    """What the status shows of the window (with ``seconds_left`` and ``text``), or None."""
    doc = window(store, session)
    if not doc:
        return None
    now = time.time() if now is None else now
    out = {**doc, "deadline_time": clock(float(doc["deadline"]))}
    if doc.get("outcome") == "open":
        out["seconds_left"] = round(max(0.0, float(doc["deadline"]) - now), 1)
        out["text"] = (f"confirm by {out['deadline_time']} "
                       f"({human_left(float(doc['deadline']) - now)} left), or the merge is "
                       "aborted automatically")
    else:
        out["text"] = {"confirmed": "merge confirmed", "committed": "confirmed by Commit",
                       "expired": f"not confirmed by {out['deadline_time']}: aborted "
                       "automatically"}.get(str(doc.get("outcome")), str(doc.get("outcome")))
    return out


# -- the steps --------------------------------------------------------------------------
def _open(ctx: StepContext) -> None:
    seconds = ctx.config.merge.confirm_within
    doc = window(ctx.store, ctx.session)
    if not doc:
        now = time.time()
        doc = {"seconds": seconds, "opened": now, "deadline": now + seconds,
               "outcome": "open"}
        ctx.store.put_doc(NAMESPACE, ctx.session, doc)
    ctx.results["confirm_by"] = doc["deadline"]
    ctx.write("merge.confirm.window",
              f"confirm the merge by {clock(float(doc['deadline']))} (within "
              f"{human_left(float(doc['seconds']))}: `au confirm`, the consoles' Confirm, or "
              "`au commit`), or it is aborted automatically", severity=Severity.NOTICE,
              details=doc)


def _confirm(ctx: StepContext) -> None:
    doc = end(ctx.store, ctx.session, "confirmed")
    ctx.write("merge.confirm", "the operator confirmed the merge"
              + (f" ({human_left(float(doc['deadline']) - float(doc['ended']))} before the "
                 "deadline)" if doc.get("ended") else ""),
              severity=Severity.NOTICE, details=doc)


def _committed(ctx: StepContext) -> None:
    if is_open(ctx.store, ctx.session):
        doc = end(ctx.store, ctx.session, "committed")
        ctx.write("merge.confirm", "Commit confirms the merge", severity=Severity.NOTICE,
                  details=doc)


def open_window(cfg: Config) -> list[Step]:
    """ExecuteMerge's last step, with ``[merge] confirm_within`` set."""
    if cfg.merge.confirm_within <= 0:
        return []
    return [Step("merge.confirm-window", _open, 60.0, "open the confirmation window")]


def confirm(cfg: Config) -> list[Step]:
    return [Step("merge.confirm", _confirm, 60.0, "record the operator's confirmation")]


def commit(cfg: Config) -> list[Step]:
    if cfg.merge.confirm_within <= 0:
        return []
    return [Step("merge.confirm-commit", _committed, 60.0, "Commit confirms the merge")]
