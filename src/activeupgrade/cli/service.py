"""``au service list|status|start|stop``: the application services of the configuration."""

from __future__ import annotations

import argparse
import time
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli.follow import operate
from activeupgrade.cli.output import print_json, progress, table
from activeupgrade.errors import ServiceError
from activeupgrade.model.states import Operation
from activeupgrade.platform.services.supervisor import describe_exit


def _state(row: dict[str, Any]) -> str:
    if row.get("running"):
        health = row.get("healthy")
        return "running" + ("" if health is None else (" healthy" if health else " UNHEALTHY"))
    return "stopped"


def cmd_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = Client.from_env().get("/services", probe=int(args.probe))
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no services configured")
        return 0
    print(table([
        [r["name"], r.get("backend", ""), _state(r), str(r.get("pid") or "-"),
         ", ".join(r.get("listen", [])) or r.get("unit", "") or "-",
         "enabled" if r.get("enabled", True) else "disabled"]
        for r in rows
    ], ["SERVICE", "BACKEND", "STATE", "PID", "LISTEN/UNIT", "STARTUP"]))
    return 0


def _show(row: dict[str, Any]) -> None:
    print(f"{row['name']} ({row.get('backend', '')}): {_state(row)} — {row.get('detail', '')}")
    if row.get("pid"):
        started = row.get("started_at") or 0
        since = f" since {time.strftime('%H:%M:%S', time.localtime(started))}" if started else ""
        print(f"  pid {row['pid']}{since}")
    if row.get("keeper_pid"):
        print(f"  keeper pid {row['keeper_pid']}")
    for s in row.get("sockets", []):
        upstream = row.get("upstreams", {}).get(s["name"], "")
        how = (f"relayed to {upstream}" if upstream and row.get("handover") == "proxy" else
               f"fd {s['fd']}, {row.get('handover', '')}")
        print(f"  socket {s['name']}: {s['listen']} ({how}, held by the keeper; clients "
              f"wait at most {row.get('hold_limit', 0):g}s)")
    if row.get("last_exit"):
        print(f"  last exit: {describe_exit(row['last_exit'])}")
    if row.get("log"):
        print(f"  log {row['log']}")


def cmd_status(args: argparse.Namespace) -> int:
    row: dict[str, Any] = Client.from_env().get(f"/services/{args.name}")
    if args.json:
        print_json(row)
    else:
        _show(row)
    if not row.get("running"):
        raise ServiceError(f"service {args.name} is not running",
                           hint=f"Start it with `au service start {args.name}`.",
                           details={"service": row})
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    with progress(quiet=args.json) as bar:
        row = operate(Client.from_env(), Operation.SERVICE_START, {"name": args.name},
                      display=bar)
    if args.json:
        print_json(row)
    else:
        verb = "started" if row.get("started") else "already running"
        print(f"{args.name} {verb}; healthy after {row.get('seconds', 0):.2f}s "
              f"({row.get('detail', '')})")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    operation = Operation.SERVICE_RELEASE if args.release else Operation.SERVICE_STOP
    with progress(quiet=args.json) as bar:
        row = operate(Client.from_env(), operation, {"name": args.name}, display=bar)
    if args.json:
        print_json(row)
    else:
        verb = "stopped" if row.get("stopped") else "was not running"
        extra = " (killed after the grace period)" if row.get("killed") else ""
        if row.get("released"):
            held = "; its keeper ended and its listening sockets are closed"
        else:
            held = "; its listening sockets stay held" if row.get("sockets") else ""
        print(f"{args.name} {verb} in {row.get('seconds', 0):.2f}s{extra}{held}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("service", help="application services: list, status, start, stop")
    ssub = p.add_subparsers(dest="service_command", required=True, metavar="COMMAND")
    ls = ssub.add_parser("list", help="every configured service and its state")
    ls.add_argument("--probe", action="store_true", help="also run the health checks")
    ls.add_argument("--json", action="store_true", help="JSON output")
    ls.set_defaults(func=cmd_list)
    st = ssub.add_parser("status", help="one service: process, keeper, sockets, health")
    st.add_argument("name")
    st.add_argument("--json", action="store_true", help="JSON output")
    st.set_defaults(func=cmd_status)
    for verb, func, text in (
        ("start", cmd_start, "start a service and wait until it is healthy"),
        ("stop", cmd_stop, "stop a service (its listening sockets stay held)"),
    ):
        c = ssub.add_parser(verb, help=text)
        c.add_argument("name")
        c.add_argument("--json", action="store_true", help="JSON output")
        if verb == "stop":
            c.add_argument("--release", action="store_true",
                           help="also end its keeper, closing the listening sockets "
                                "(refused during a session)")
        c.set_defaults(func=func)
