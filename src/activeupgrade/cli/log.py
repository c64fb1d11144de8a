"""``au log``: the activity log, as a tree, filtered, followed, or saved."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from activeupgrade.activity import Entry, render_json, render_text
from activeupgrade.api.client import Client
from activeupgrade.errors import UsageError
from activeupgrade.model.states import Severity


def cmd_log(args: argparse.Namespace) -> int:
    client = Client.from_env()
    params = dict(
        session=args.session, severity=args.severity, request=args.request, side=args.side,
        event=args.event, limit=args.limit, root=args.entry,
    )
    raw: list[dict[str, Any]] = client.get("/log", **params)
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
    if args.json and not args.follow:
        print(json.dumps(raw, indent=2))
    elif not args.follow:
        print(render_text(entries), end="")
    if args.follow:
        last = raw[-1]["id"] if raw else 0
        if args.json:
            for d in raw:
                print(json.dumps(d), flush=True)
        else:
            print(render_text(entries), end="", flush=True)
        min_rank = Severity(args.severity).rank if args.severity else 0
        for ev in client.events(after=last):
            data = ev.data
            if ev.kind != "log" or data["id"] <= last:
                continue
            if Severity(data["severity"]).rank < min_rank:
                continue
            if args.request and data["request"] != args.request:
                continue
            if args.side and data["side"] != args.side:
                continue
            if args.event and not data["event"].startswith(args.event):
                continue
            last = data["id"]
            print(json.dumps(data) if args.json else Entry.from_dict(data).to_text(), flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("log", help="show, follow or save the activity log")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new entries")
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
    p.add_argument("--limit", type=int, default=10_000, help="at most this many entries")
    p.set_defaults(func=cmd_log)
