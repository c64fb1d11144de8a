"""``au check``: run the readiness checks (CheckReadiness) and print every verdict."""

from __future__ import annotations

import argparse
import time
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli import oneoff
from activeupgrade.cli.follow import act
from activeupgrade.cli.output import print_json, progress
from activeupgrade.errors import AUError, CheckFailed
from activeupgrade.model.states import OperatorAction


def report_lines(report: dict[str, Any]) -> list[str]:
    """One line per check, failures followed by their recommended action."""
    out = []
    for c in report.get("checks", []):
        mark = "ok  " if c["ok"] else ("FAIL" if c["severity"] == "error" else "warn")
        out.append(f"{mark} {c['id']} {c['name']:<24} {c['message']}")
        if not c["ok"] and c.get("action"):
            out.append(f"     {'':<32} → {c['action']}")
    failed = [c for c in report.get("checks", []) if not c["ok"] and c["severity"] == "error"]
    out.append("")
    out.append("READY: no blocking problem" if report.get("ready") else
               f"NOT READY: {len(failed)} check(s) failed")
    return out


def not_ready(report: dict[str, Any]) -> CheckFailed:
    failed = [f"{c['id']} {c['name']}" for c in report.get("checks", [])
              if not c["ok"] and c["severity"] == "error"]
    return CheckFailed("not ready: " + ", ".join(failed),
                       details={"failed": failed})


def cmd_check(args: argparse.Namespace) -> int:
    client = Client.from_env()
    config = oneoff.config_path(args) or None
    asked = time.time()
    try:
        with progress(quiet=args.json or args.no_wait) as bar:
            act(client, OperatorAction.CHECK, config=config, wait=not args.no_wait,
                display=bar)
    except AUError:
        # The check itself failed (an action of the check, its configuration): show the
        # verdicts it reached, then the failure.
        report = client.get("/checks/last")
        if report.get("ran", True) and float(report.get("at", 0)) >= asked - 1:
            if args.json:
                print_json(report)
            else:
                print("\n".join(report_lines(report)))
        raise
    if args.no_wait:
        return 0
    report = client.get("/checks/last")
    if args.json:
        print_json(report)
    else:
        print("\n".join(report_lines(report)))
    if not report.get("ready"):
        raise not_ready(report)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("check", help="run the readiness checks (Idle only); exit 60 when "
                       "not ready")
    oneoff.add_arguments(p, "check", "{ready, checks[]}")
    p.add_argument("--no-wait", action="store_true", help="return at once")
    p.set_defaults(func=cmd_check)
