"""Running a set of readiness checks and keeping the last report.

Each check is a probe (``probes/``) that looks at the host and answers a ``Verdict``. A probe
that fails unexpectedly fails its check (with the reason) instead of stopping the others.
The report is stored durably (store document ``checks``/``last``) for ``au check --json``,
``GET /checks/last`` and the consoles: ``{ready, checks: [{id, severity, ok, message,
action}]}``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from activeupgrade.checks.catalogue import BY_ID, CheckSeverity
from activeupgrade.checks.probe import CheckEnv, Probe, Verdict
from activeupgrade.checks.probes import PROBES
from activeupgrade.errors import AUError
from activeupgrade.store.db import Store

__all__ = ["CheckEnv", "CheckResult", "Probe", "Report", "Verdict", "run_checks", "run_one"]

NAMESPACE = "checks"
LAST = "last"
REPORT_FORMAT = 1


@dataclass
class CheckResult:
    id: str
    name: str
    severity: CheckSeverity
    ok: bool
    message: str
    action: str
    """The recommended action when it failed ("" when it passed)."""
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return not self.ok and self.severity is CheckSeverity.ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "severity": self.severity.value,
            "ok": self.ok, "verdict": "pass" if self.ok else "fail",
            "message": self.message, "action": self.action,
            "seconds": round(self.seconds, 4), "details": self.details,
        }


@dataclass
class Report:
    checks: list[CheckResult]
    at: float = field(default_factory=time.time)
    state: str = ""
    side: str = ""
    session: str = ""
    config: str = ""

    @property
    def ready(self) -> bool:
        return not any(c.blocking for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT, "ready": self.ready, "at": self.at, "state": self.state,
            "side": self.side, "session": self.session, "config": self.config,
            "checks": [c.to_dict() for c in self.checks],
        }


def run_one(check_id: str, env: CheckEnv) -> CheckResult:
    spec = BY_ID[check_id]
    began = time.monotonic()
    try:
        verdict = PROBES[check_id](env)
    except AUError as exc:
        verdict = Verdict(False, f"could not be checked: {exc.message}")
    except Exception as exc:  # a probe's bug must not hide the other checks
        verdict = Verdict(False, f"could not be checked: {type(exc).__name__}: {exc}")
    return CheckResult(
        id=spec.id, name=spec.name, severity=verdict.severity or spec.severity,
        ok=verdict.ok, message=verdict.message, action="" if verdict.ok else spec.fix,
        seconds=time.monotonic() - began, details=verdict.details,
    )


def run_checks(env: CheckEnv, ids: Iterable[str]) -> Report:
    """Run the checks ``ids`` in order; never raises for a failed check."""
    results = []
    for check_id in ids:
        if env.step is not None:
            env.step.check()  # honour the step's deadline and an operator abort
        results.append(run_one(check_id, env))
    return Report(results, state=env.state.value, side=env.side.value, session=env.session,
                  config=env.config.source)


def save_report(store: Store, report: Report) -> None:
    store.put_doc(NAMESPACE, LAST, report.to_dict())


def last_report(store: Store) -> dict[str, Any] | None:
    """The last stored report, or None when no check ever ran."""
    doc = store.get_doc(NAMESPACE, LAST)
    return doc if isinstance(doc, dict) else None
