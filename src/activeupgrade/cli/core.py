"""``au status`` (``--watch``), ``au history``, ``au cancel``, ``au init`` and
``au daemon``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli.output import STATE_COLOURS, paint, print_json
from activeupgrade.engine.view import StatusView
from activeupgrade.errors import DaemonError, InstanceError
from activeupgrade.instance import Instance
from activeupgrade.units import human_bytes, iso_time


def status_text(view: StatusView) -> str:
    s = view.to_dict()
    facts = s.get("facts") or {}
    pending = facts.get("pending_resync") or {}
    duplex = "Duplex" if s.get("duplex") else "Simplex"
    if pending.get("bytes"):
        duplex += (
            f" (resync pending: {human_bytes(float(pending['bytes']))},"
            f" {pending.get('files', 0)} files, ~{float(pending.get('seconds_estimate', 0)):.1f}s)"
        )
    operational = paint(str(s["operational_state"]),
                        STATE_COLOURS.get(str(s["operational_state"]), ""))
    lines = [
        f"Upgrade State:     {paint(str(s['upgrade_state']), 'bold')}",
        f"Operational State: {operational}",
        f"Partner State:     {s['partner_state']}",
        f"Duplex:            {duplex}",
        f"Request:           {s['request']}"
        + (f" › {s['sub_request']}" if s.get("sub_request") else "")
        + (f" (step {s['step']})" if s.get("step") else ""),
        f"Session:           {s.get('session') or '-'}",
        f"Configuration:     {s.get('config') or '(none: all adopted volumes)'}",
    ]
    if view.broken:
        lines.append(f"Broken because:    {s.get('reason')}")
        if view.error and view.error.get("hint"):
            lines.append(f"What to do:        {view.error['hint']}")
    elif view.error:
        lines.append(f"Last failure:      {view.error.get('message')}")
    if view.operation:
        lines.append(f"Operation:         {view.operation.get('operation')}")
    if view.busy and view.progress.step:
        from activeupgrade.present.progress import progress_line

        lines.append(f"Progress:          {progress_line(view)}")
    allowed = s.get("allowed_actions") or []
    costs = s.get("costs") or {}
    lines.append(
        "Allowed actions:   "
        + (", ".join(f"{a} ({costs.get(a, '')})" for a in allowed) or "none while Busy")
    )
    if isinstance(facts.get("isolation"), str):
        lines.append(f"Isolation:         {facts['isolation']}")
    from activeupgrade.present.rollback import checkpoint_lines, confirm_line

    if window := confirm_line(s):
        lines.append(f"Confirmation:      {window}")
    checkpoints = checkpoint_lines(s)
    if checkpoints:
        lines.append("Data checkpoints:")
        lines += [f"  {line}" for line in checkpoints]
    return "\n".join(lines)


def status_json(view: StatusView) -> dict[str, Any]:
    """The status document with ISO 8601 times (with offset) beside the epoch seconds."""
    d = view.to_dict()
    d["updated_time"] = iso_time(view.updated) if view.updated else None
    if view.progress.started:
        d["progress"]["started_time"] = iso_time(view.progress.started)
    return d


def cmd_status(args: argparse.Namespace) -> int:
    client = Client.from_env()
    if args.watch:
        return watch(client, args.json)
    s = client.status()
    if args.json:
        print_json(status_json(s))
    else:
        print(status_text(s))
    return 0


def watch(client: Client, as_json: bool) -> int:
    """Redraw the status at every change (JSON: one document per line) until Ctrl-C."""
    tty = sys.stdout.isatty() and not as_json
    view: StatusView | None = None
    try:
        for ev in client.events():
            if ev.kind == "status":
                fresh = StatusView.from_dict(ev.data)
                if view is not None and fresh.busy and not fresh.progress.step:
                    fresh = dataclasses.replace(fresh, progress=view.progress)
                view = fresh if ev.data.get("allowed_actions") is not None else (
                    client.status())
            elif ev.kind == "progress" and view is not None:
                view = view.with_progress(ev.data)
            else:
                continue
            if as_json:
                print(json.dumps(status_json(view), sort_keys=True), flush=True)
            elif tty:
                stamp = datetime.now().astimezone().isoformat(timespec="seconds")
                sys.stdout.write("\033[H\033[2J" + status_text(view)
                                 + f"\n\n(watching since {stamp}; Ctrl-C stops)\n")
                sys.stdout.flush()
            else:
                print(status_text(view) + "\n", flush=True)
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = Client.from_env().get("/history", limit=args.limit)
    if args.json:
        print_json(rows)
        return 0
    from activeupgrade.cli.output import table
    from activeupgrade.present.progress import duration_text

    colours = {"committed": "green", "aborted": "yellow", "running": "blue",
               "unfinished": "red"}
    shown = [[r["session"], str(r["started_time"])[:19].replace("T", " "),
              paint(r["outcome"], colours.get(r["outcome"], "")),
              duration_text(float(r["seconds"])), str(r["broken"]), r["config"] or "-"]
             for r in rows]
    if not shown:
        print("no session yet")
        return 0
    print(table(shown, ["SESSION", "STARTED", "OUTCOME", "DURATION", "BROKEN", "CONFIG"]))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    status = Client.from_env().cancel(args.reason or "the operator cancelled it (au cancel)")
    print(f"cancel requested: {status.request} stops at its next check point")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    instance = Instance.from_env()
    if instance.exists():
        print(f"an instance exists already at {instance.home}")
        return 0
    from activeupgrade.store.db import Store  # creates the state database

    instance.ensure()
    Store(instance.db).close()
    print(f"created the instance {instance.home}")
    return 0


STOP_TIMEOUT = 120.0
"""How long `au daemon --stop` waits for the daemon to end."""


def _wait_gone(instance: Instance, pid: int) -> None:
    """Return once the daemon's process ``pid`` has ended: its socket removed and the
    instance let go, so a command started next never meets the old daemon on its way out
    (nor a new daemon its socket removed by the old one)."""
    from activeupgrade import proc

    deadline = time.monotonic() + STOP_TIMEOUT
    while proc.alive(pid):
        if time.monotonic() > deadline:
            raise DaemonError(f"the daemon (pid {pid}) did not stop within "
                              f"{STOP_TIMEOUT:.0f}s of being asked",
                              hint=f"See {instance.logs / 'daemon.log'} and `au log`.")
        time.sleep(0.05)


def cmd_daemon(args: argparse.Namespace) -> int:
    if args.stop:
        if not Instance.from_env().exists():
            print("no daemon running (no instance)")
            return 0
        client = Client.from_env(start=False)
        if client.alive():
            pid = int(client.get("/ping")["pid"])
            client.post("/daemon/shutdown")
            _wait_gone(client.instance, pid)
            print("daemon stopped")
        else:
            print("no daemon running")
        return 0
    from activeupgrade.daemon import serve

    instance = Instance.from_env()
    if not instance.exists():
        raise InstanceError(f"there is no instance at {instance.home}",
                            hint="Create it with `au init` first.")
    return serve(instance)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "status", help="show the status bar: states, partner, duplex, allowed actions"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", "-w", action="store_true",
                   help="redraw at every change until Ctrl-C (JSON: a document per line)")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("history", help="past sessions: outcome, duration, broken requests")
    p.add_argument("--limit", type=int, default=50, help="the newest N sessions (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("cancel", help="cancel the running maintenance operation or readiness "
                       "check (a session's request is aborted instead: au abort)")
    p.add_argument("--reason", help="said in the activity log")
    p.set_defaults(func=cmd_cancel)
    p = sub.add_parser("init", help="create the instance folder (AU_HOME) on purpose")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("daemon", help="run the daemon in the foreground (the CLI starts it itself)")
    p.add_argument("--stop", action="store_true", help="ask the running daemon to stop")
    p.set_defaults(func=cmd_daemon)
