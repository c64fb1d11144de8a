"""``au status`` and ``au daemon``."""

from __future__ import annotations

import argparse

from activeupgrade.api.client import Client
from activeupgrade.cli.output import print_json
from activeupgrade.engine.view import StatusView
from activeupgrade.errors import InstanceError
from activeupgrade.instance import Instance
from activeupgrade.units import human_bytes


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
    lines = [
        f"Upgrade State:     {s['upgrade_state']}",
        f"Operational State: {s['operational_state']}",
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
        p = s["progress"]
        lines.append(
            f"Progress:          {p.get('step')} {p.get('percent', 0)}% {p.get('text', '')}"
        )
    allowed = s.get("allowed_actions") or []
    costs = s.get("costs") or {}
    lines.append(
        "Allowed actions:   "
        + (", ".join(f"{a} ({costs.get(a, '')})" for a in allowed) or "none while Busy")
    )
    if isinstance(facts.get("isolation"), str):
        lines.append(f"Isolation:         {facts['isolation']}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    client = Client.from_env()
    s = client.status()
    if args.json:
        print_json(s.to_dict())
    else:
        print(status_text(s))
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


def cmd_daemon(args: argparse.Namespace) -> int:
    if args.stop:
        if not Instance.from_env().exists():
            print("no daemon running (no instance)")
            return 0
        client = Client.from_env(start=False)
        if client.alive():
            client.post("/daemon/shutdown")
            print("daemon stopping")
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
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("init", help="create the instance folder (AU_HOME) on purpose")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("daemon", help="run the daemon in the foreground (the CLI starts it itself)")
    p.add_argument("--stop", action="store_true", help="ask the running daemon to stop")
    p.set_defaults(func=cmd_daemon)
