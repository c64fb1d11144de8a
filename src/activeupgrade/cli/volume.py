"""``au volume``: adopt, list, show, verify, release, resync managed volumes."""

from __future__ import annotations

import argparse
import os
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli.follow import operate
from activeupgrade.cli.output import print_json, progress, table
from activeupgrade.model.states import Operation
from activeupgrade.units import human_bytes


def _list(args: argparse.Namespace) -> int:
    vols: list[dict[str, Any]] = Client.from_env().get("/volumes")
    if args.json:
        print_json(vols)
        return 0
    rows = [[v["name"], v["path"], v["role"], v["mode"], str(v["live"]),
             "yes" if v["duplex"] else "no", v["phase"]] for v in vols]
    print(table(rows, ["NAME", "PATH", "ROLE", "LIVE PATH", "LIVE", "DUPLEX", "PHASE"]))
    return 0


def _show(args: argparse.Namespace) -> int:
    v: dict[str, Any] = Client.from_env().get(f"/volumes/{args.name.strip('/')}"
                                              if not args.name.startswith("/")
                                              else f"/volumes/{args.name}")
    if args.json:
        print_json(v)
        return 0
    print(f"{v['name']}: {v['path']} ({v['role']} volume)")
    print(f"  live path:  {v['live_path']} — replica {v['live']}")
    for letter, path in v["replicas"].items():
        print(f"  replica {letter}:  {path}")
    print(f"  duplex:     {'yes' if v['duplex'] else 'no'}    adoption: {v['phase']}")
    if v.get("storage"):
        print(f"  storage:    {v['storage']}")
    if v.get("problem"):
        print(f"  problem:    {v['problem']} — run `au volume attach {v['name']}`")
    if v.get("checkpoint_at_merge"):
        print("  checkpoint: taken at merge (rollback-safe data: an abort from Merge "
              "returns the data to it)")
    if v.get("session"):
        print(f"  session:    {v['session']}")
    if v.get("checkpoint"):
        from activeupgrade.present.rollback import checkpoint_lines

        for line in checkpoint_lines({"facts": {"checkpoints": [v["checkpoint"]]}},
                                     shown=len((v["checkpoint"].get("writes") or {}).get(
                                         "lines") or [])):
            print(f"  {line}")
    estimated = v.get("pending_as_of", 1)
    for outcome, p in v.get("pending_resync", {}).items():
        if not estimated:
            print(f"  resync on {outcome}: being estimated (see `au status` shortly)")
            continue
        print(f"  resync on {outcome}: {human_bytes(p['bytes'])} in {p['files']} entries, "
              f"about {p['seconds_estimate']:.1f}s")
    return 0


def _adopt(args: argparse.Namespace) -> int:
    path = os.path.abspath(args.path)
    # The first adopt creates the instance (AU_HOME, or the default one) on purpose.
    client = Client.from_env(create=True)
    with progress(quiet=args.json) as bar:
        done = operate(client, Operation.ADOPT, {"path": path, "role": args.role},
                       display=bar)
    v: dict[str, Any] = done["volume"]
    if args.json:
        print_json(v)
        return 0
    print(f"{v['path']} is managed as volume {v['name']} ({v['role']}); live path: "
          f"{v['live_path']}; duplex")
    return 0


def _verify(args: argparse.Namespace) -> int:
    client = Client.from_env()
    with progress(quiet=args.json) as bar:
        done = operate(client, Operation.VERIFY,
                       {"names": list(args.names), "full": bool(args.full)}, display=bar)
    results: list[dict[str, Any]] = done.get("volumes", [])
    if args.json:
        print_json(results)
    else:
        for r in results:
            how = "byte for byte" if r.get("full") else "quick"
            lag = (f"; {r['pending']} changed by the applications since the last resync: "
                   "pending resync" if r.get("pending") else "")
            print(f"{r['name']}: replicas identical ({r['entries']} entries, {how}{lag})")
    return 0


def _release(args: argparse.Namespace) -> int:
    with progress() as bar:
        r = operate(Client.from_env(), Operation.RELEASE, {"name": args.name}, display=bar)
    print(f"{r['released']} is a plain directory again")
    return 0


def _attach(args: argparse.Namespace) -> int:
    r = operate(Client.from_env(), Operation.ATTACH, {"name": args.name})
    if args.json:
        print_json(r)
    elif r["attached"]:
        print(f"{r['path']} shows replica {r['replica']} again")
    else:
        print(f"{r['path']} already shows replica {r['replica']}: nothing to do")
    return 0


def _resync(args: argparse.Namespace) -> int:
    with progress(quiet=args.json) as bar:
        r = operate(Client.from_env(), Operation.RESYNC, {"name": args.name}, display=bar)
    if args.json:
        print_json(r)
    else:
        print(f"{r['name']}: replica {r['to']} resynchronised from {r['from']}: "
              f"{r['copied_files']} copied ({human_bytes(r['copied_bytes'])}), "
              f"{r['deleted']} deleted in {r['seconds']:.2f}s")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("volume", help="managed volumes and their replicas")
    vs = p.add_subparsers(dest="volume_cmd", required=True)
    a = vs.add_parser("adopt", help="turn a directory into a managed volume (resumable)")
    a.add_argument("path")
    a.add_argument("--role", choices=["system", "data"], required=True)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_adopt)
    li = vs.add_parser("list", help="managed volumes")
    li.add_argument("--json", action="store_true")
    li.set_defaults(func=_list)
    sh = vs.add_parser("show", help="one volume: live path, replicas, pending resync")
    sh.add_argument("name", help="volume name or path")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=_show)
    ve = vs.add_parser("verify", help="compare replicas (all volumes without NAME)")
    ve.add_argument("names", nargs="*")
    ve.add_argument("--full", action="store_true",
                    help="read every byte of both replicas (default: only files the resync "
                         "manifest does not vouch for)")
    ve.add_argument("--json", action="store_true")
    ve.set_defaults(func=_verify)
    re_ = vs.add_parser("release", help="give back a plain directory")
    re_.add_argument("name")
    re_.set_defaults(func=_release)
    at = vs.add_parser("attach", help="make the live path show its replica again (after a "
                       "mount was removed)")
    at.add_argument("name", help="volume name or path")
    at.add_argument("--json", action="store_true")
    at.set_defaults(func=_attach)
    rs = vs.add_parser("resync", help="bring the standby replica up to date (Idle)")
    rs.add_argument("name")
    rs.add_argument("--json", action="store_true")
    rs.set_defaults(func=_resync)
