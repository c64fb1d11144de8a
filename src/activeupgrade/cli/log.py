"""``au log``: the activity log, as a tree, filtered, followed, or saved.

Without options it prints the newest entries (at most ``--tail``, 10,000 by default),
oldest first; ``--since`` keeps those written from a time on (ISO 8601, or a span back
from now: ``90s``, ``10m``, ``2h``, ``1d``); ``-f`` starts at the end — it prints only the
``--tail`` entries asked for, then each new one as it is written.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from activeupgrade.activity import Entry, render_json, render_text
from activeupgrade.api.client import Client
from activeupgrade.errors import UsageError
from activeupgrade.model.states import Severity

DEFAULT_TAIL = 10_000
SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """``10m`` (ten minutes ago), ``2h``, ``1d``, ``90s``, or an ISO 8601 time
    (``2025-03-01T14:00``, ``2025-03-01 14:00:00+01:00``; without an offset it is local
    time) as seconds since the epoch."""
    m = SPAN.match(text)
    if m and m.group(2):
        return (time.time() if now is None else now) - float(m.group(1)) * UNITS[m.group(2)]
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a span back from now nor an ISO 8601 time",
            hint="For example --since 10m, --since 2h, --since 2025-03-01T14:00 or "
            "--since '2025-03-01 14:00:00+01:00'.") from None
    return at.timestamp() if at.tzinfo else at.astimezone().timestamp()


def _matches(args: argparse.Namespace, data: dict[str, Any], min_rank: int) -> bool:
    if Severity(data["severity"]).rank < min_rank:
        return False
    if args.request and data["request"] != args.request:
        return False
    if args.side and data["side"] != args.side:
        return False
    if args.session and data["session"] != args.session:
        return False
    return not (args.event and not data["event"].startswith(args.event))


def cmd_log(args: argparse.Namespace) -> int:
    client = Client.from_env()
    tail = args.tail if args.tail is not None else (0 if args.follow else DEFAULT_TAIL)
    if tail < 0:
        raise UsageError(f"--tail (or --limit) must be 0 or more, got {tail}",
                         hint="Give how many of the newest entries to show, e.g. --tail 50.")
    params: dict[str, Any] = dict(
        session=args.session, severity=args.severity, request=args.request, side=args.side,
        event=args.event, root=args.entry, newest=1,
        since=parse_since(args.since) if args.since else None,
    )
    raw: list[dict[str, Any]] = client.get("/log", limit=tail, **params) if tail else []
    entries = [Entry.from_dict(d) for d in raw]
    if args.save:
        path = Path(args.save)
        as_json = args.json or path.suffix == ".json"
        text = render_json(entries) if as_json else render_text(entries)
        try:
            path.write_text(text)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
        print(f"saved {len(entries)} entries to {path} ({'JSON' if as_json else 'text'})")
        return 0
    if not args.follow:
        print(json.dumps(raw, indent=2) if args.json else render_text(entries), end=""
              if not args.json else "\n")
        return 0
    if args.json:
        for d in raw:
            print(json.dumps(d), flush=True)
    else:
        print(render_text(entries), end="", flush=True)
    # Follow from the end: the newest entry now (whatever the filters) is where it starts.
    newest: list[dict[str, Any]] = client.get("/log", limit=1, newest=1)
    last = max([d["id"] for d in raw + newest], default=0)
    min_rank = Severity(args.severity).rank if args.severity else 0
    for ev in client.events(after=last):
        data = ev.data
        if ev.kind != "log" or data["id"] <= last:
            continue
        last = data["id"]
        if not _matches(args, data, min_rank):
            continue
        print(json.dumps(data) if args.json else Entry.from_dict(data).to_text(), flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("log", help="show, follow or save the activity log (newest last)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="print new entries as they are written (starts at the end)")
    p.add_argument("--tail", "-n", type=int, metavar="N",
                   help=f"the newest N entries (default {DEFAULT_TAIL}; with -f: 0)")
    p.add_argument("--limit", dest="tail", type=int, help=argparse.SUPPRESS)
    p.add_argument("--since", metavar="TIME",
                   help="entries written from TIME on: ISO 8601 (2025-03-01T14:00) or a span "
                   "back from now (90s, 10m, 2h, 1d)")
    p.add_argument("--json", action="store_true", help="JSON output (one object per line with -f)")
    p.add_argument(
        "--save", metavar="FILE", help="save to FILE (JSON if it ends in .json or with --json)"
    )
    p.add_argument("--session", help="only this session")
    p.add_argument("--severity", choices=[s.value for s in Severity], help="minimum severity")
    p.add_argument("--request", help="only this request (e.g. ExecuteMerge)")
    p.add_argument("--side", choices=["Production", "Upgrade"], help="only this side")
    p.add_argument("--event", help="only event ids starting with this")
    p.add_argument("--entry", type=int, help="only the subtree of this entry id")
    p.set_defaults(func=cmd_log)
