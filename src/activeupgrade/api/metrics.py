"""The daemon's Prometheus metrics (text exposition format 0.0.4), from what the instance
already stores: the status, the ``sessions`` table and the activity log.

Served at ``GET /metrics`` on the API socket and on the web console's listener (behind
its token: a scrape sends ``Authorization: Bearer TOKEN``). Counters count what the
activity log holds (it is rotated after ``activity.ROTATE_AT`` entries: they may go
down then, which Prometheus treats as a counter reset).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from activeupgrade import __version__
from activeupgrade.model.states import OperationalState, UpgradeState
from activeupgrade.store.db import Store

DURATION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
"""Seconds: the buckets of the session duration histogram."""


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    """Lines of the text format, each metric with its HELP and TYPE."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(**labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def metrics_text(status: dict[str, Any], store: Store, now: float | None = None) -> str:
    """Every metric, as Prometheus reads them."""
    at = time.time() if now is None else now
    out = Exposition()
    out.metric("activeupgrade_info", "gauge", "The tool's version.",
               [({"version": __version__}, 1)])
    upgrade = str(status.get("upgrade_state", ""))
    operational = str(status.get("operational_state", ""))
    out.metric("activeupgrade_upgrade_state", "gauge",
               "The upgrade state (1 for the current one).",
               [({"state": s.value}, 1 if s.value == upgrade else 0) for s in UpgradeState])
    out.metric("activeupgrade_operational_state", "gauge",
               "The operational state (1 for the current one).",
               [({"state": s.value}, 1 if s.value == operational else 0)
                for s in OperationalState])
    out.metric("activeupgrade_duplex", "gauge",
               "1 when every volume's two replicas are identical.",
               [({}, 1 if status.get("duplex") else 0)])
    pending = ((status.get("facts") or {}).get("pending_resync") or {})
    out.metric("activeupgrade_resync_pending_bytes", "gauge",
               "Bytes the next resync would copy.", [({}, float(pending.get("bytes") or 0))])
    _sessions(out, store, at)
    _from_log(out, store)
    return out.text()


def _sessions(out: Exposition, store: Store, at: float) -> None:
    rows = store.query("SELECT started, ended, outcome FROM sessions")
    outcomes: dict[str, int] = {"committed": 0, "aborted": 0, "running": 0}
    ended: list[float] = []
    for r in rows:
        if r["ended"] is None:
            outcomes["running"] += 1
            continue
        outcomes[str(r["outcome"] or "unfinished")] = outcomes.get(
            str(r["outcome"] or "unfinished"), 0) + 1
        ended.append(max(0.0, float(r["ended"]) - float(r["started"])))
    out.metric("activeupgrade_sessions", "gauge",
               "Sessions by outcome (running: started and not finished).",
               [({"outcome": k}, v) for k, v in sorted(outcomes.items())])
    buckets = [({"le": _number(b)}, sum(1 for d in ended if d <= b)) for b in DURATION_BUCKETS]
    buckets.append(({"le": "+Inf"}, len(ended)))
    out.lines += ["# HELP activeupgrade_session_duration_seconds Duration of finished "
                  "sessions, from split to finish.",
                  "# TYPE activeupgrade_session_duration_seconds histogram"]
    for labels, value in buckets:
        out.lines.append(f"activeupgrade_session_duration_seconds_bucket{_labels(**labels)} "
                         f"{_number(value)}")
    out.lines += [f"activeupgrade_session_duration_seconds_sum {_number(sum(ended))}",
                  f"activeupgrade_session_duration_seconds_count {len(ended)}"]
    running = [at - float(r["started"]) for r in rows if r["ended"] is None]
    out.metric("activeupgrade_session_running_seconds", "gauge",
               "How long the running session has lasted (0 without one).",
               [({}, round(max(running, default=0.0), 3))])


def _from_log(out: Exposition, store: Store) -> None:
    copied = store.query(
        "SELECT COALESCE(SUM(json_extract(details, '$.copied_bytes')), 0) AS b, COUNT(*) AS n"
        " FROM log WHERE event = 'volume.resync.done'")
    out.metric("activeupgrade_resync_bytes_total", "counter",
               "Bytes copied by the resyncs in the activity log.",
               [({}, float(copied[0]["b"] or 0))])
    out.metric("activeupgrade_resyncs_total", "counter", "Resyncs in the activity log.",
               [({}, float(copied[0]["n"] or 0))])
    checks = store.query(
        "SELECT json_extract(details, '$.id') AS id, COUNT(*) AS n FROM log"
        " WHERE event = 'check.fail' GROUP BY id ORDER BY id")
    out.metric("activeupgrade_health_check_failures_total", "counter",
               "Failed readiness (health) checks seen, by check id.",
               [({"check": str(r["id"] or "")}, float(r["n"])) for r in checks])
    failed = store.query(
        "SELECT json_extract(details, '$.error.error') AS error, COUNT(*) AS n FROM log"
        " WHERE event IN ('request.broken', 'request.failed', 'operation.failed')"
        " GROUP BY error ORDER BY error")
    out.metric("activeupgrade_request_failures_total", "counter",
               "Requests and operations that failed, by error class (ServiceError: an "
               "application was not healthy in time).",
               [({"error": str(r["error"] or "")}, float(r["n"])) for r in failed])
