"""``au config schema|show|summary|validate|new|load``: configuration files.

Reading commands work on the file directly (no daemon needed) with the same functions the
API uses, so errors are identical everywhere. ``load`` goes through the daemon, which
refuses it while a session runs. A bare file name is the file in the current folder when
it exists, else the one in the default folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from activeupgrade.api.client import Client
from activeupgrade.cli.output import print_json
from activeupgrade.config import loader
from activeupgrade.config.export import json_schema
from activeupgrade.config.model import Config
from activeupgrade.config.show import show_dict, show_lines
from activeupgrade.config.summary import summary_lines
from activeupgrade.config.template import write_template
from activeupgrade.errors import AUError, ConfigError
from activeupgrade.instance import Instance


def _path(name: str) -> Path:
    return loader.resolve(Instance.from_env(), name)


def _load(name: str | None) -> Config:
    if name:
        return loader.load_file(_path(name))
    loaded = Client.from_env().status().config
    if not loaded:
        raise ConfigError("no configuration file given and none is loaded",
                          hint="Give a FILE, or load one with `au config load FILE`.")
    return loader.load_file(Path(loaded))


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    cfg = _load(args.file)
    if args.json:
        print_json(show_dict(cfg))
    else:
        print("\n".join(show_lines(cfg)))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    cfg = _load(args.file)
    lines = summary_lines(cfg)
    if args.json:
        print_json({"source": cfg.source, "lines": lines, "text": "\n".join(lines)})
    else:
        print("\n".join(lines))
    return 0


def problems(exc: AUError) -> list[dict[str, Any]]:
    """Every problem an error reports (a file's several problems, or the one)."""
    listed = exc.details.get("errors")
    if isinstance(listed, list) and listed:
        return [dict(e) for e in listed]
    return [{"message": exc.message, "hint": exc.hint, **exc.details}]


def cmd_validate(args: argparse.Namespace) -> int:
    path = _path(args.file)
    try:
        cfg = loader.load_file(path)
    except AUError as exc:
        if args.json:
            print_json({"valid": False, "source": str(path), "error": exc.to_dict(),
                        "problems": problems(exc)})
        raise
    if args.json:
        print_json({"valid": True, "source": cfg.source, "files": list(cfg.files),
                    "notices": list(cfg.notices)})
        return 0
    print(f"{cfg.source}: valid ({len(cfg.files)} file(s), {len(cfg.volumes)} volume(s), "
          f"{len(cfg.services)} service(s), {len(cfg.actions)} action(s))")
    for notice in cfg.notices:
        print(f"  notice: {notice}")
    return 0


def _adopted_roles() -> dict[str, str]:
    """The role of each adopted volume, by path ({} without an instance or daemon)."""
    instance = Instance.from_env()
    if not instance.exists():
        return {}
    try:
        vols: list[dict[str, Any]] = Client.for_instance(instance).get("/volumes")
    except AUError:
        return {}
    return {str(v["path"]): str(v["role"]) for v in vols}


def cmd_new(args: argparse.Namespace) -> int:
    from activeupgrade.config.adhoc import parse_volume

    path = _path(args.file)
    roles = _adopted_roles() if args.volume else {}
    volumes: list[tuple[str, str]] = []
    for item in args.volume or []:
        vol, role = parse_volume(item)
        given = item != vol  # PATH:ROLE
        volumes.append((vol, role.value if given else roles.get(vol, role.value)))
    write_template(path, volumes, args.description or "", force=args.force)
    print(f"wrote {path}; edit it, then run `au config validate {path}`")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    path = "" if args.none else str(_path(args.file or ""))
    if path:
        loader.load_file(Path(path))  # refuse a bad file before asking the daemon
    result = Client.from_env().post("/config/load", {"path": path})
    if args.json:
        print_json(result)
    else:
        print(f"loaded {path} for the next session" if path else
              "no configuration loaded: the next session uses every adopted volume")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    top = sub.add_parser("config", help="configuration files: schema, show, summary, "
                         "validate, new, load")
    cmds = top.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])

    p = cmds.add_parser("schema", help="print the JSON Schema of configuration files")
    p.add_argument("--json", action="store_true", help="(always JSON)")
    p.set_defaults(func=cmd_schema)

    for name, func, text in (
        ("show", cmd_show, "the effective configuration and the file of every setting"),
        ("summary", cmd_summary, "the upgrade summary in plain words"),
    ):
        p = cmds.add_parser(name, help=text)
        p.add_argument("file", nargs="?", metavar="FILE",
                       help="configuration file (default: the loaded one)")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)

    p = cmds.add_parser("validate", help="check a file and its children; exit 3 when bad")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_validate)

    p = cmds.add_parser("new", help="write a commented starting file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--volume", action="append", metavar="PATH[:ROLE]",
                   help="select this volume, with its role (system or data; without one: "
                   "the role it was adopted with, else system); repeatable")
    p.add_argument("--description", metavar="TEXT", help="what the upgrade is about")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_new)

    p = cmds.add_parser("load", help="make FILE the configuration of the next session")
    p.add_argument("file", nargs="?", metavar="FILE")
    p.add_argument("--none", action="store_true",
                   help="load no file: sessions use every adopted volume")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_load)
