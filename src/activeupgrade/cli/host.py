"""``au host``: the boot unit that attaches the live paths before anything else starts.

After a reboot every live path shows its original directory, which is replica A. When a
volume must show replica B (in Merge, after a commit), a program started before the tool
would run old software and write where the live side does not look. The unit
``activeupgrade-livepaths.service`` runs ``au host attach`` right after the local
filesystems are mounted (``DefaultDependencies=no``, ``Before=local-fs.target``): before
``sysinit.target``, so before every service and application. ``au host attach`` needs no
daemon and no program from a volume (the mounts are system calls); the daemon does the same
when it starts, for hosts without systemd.

- ``au host install``: writes the unit into ``/etc/systemd/system`` and enables it;
- ``au host uninstall``: removes it;
- ``au host status``: the unit, and what each live path shows;
- ``au host attach``: what the unit runs (also by hand, without a daemon).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from activeupgrade import proc
from activeupgrade.cli.output import print_json, table
from activeupgrade.durable import write_durably
from activeupgrade.errors import InstanceError, VolumeError
from activeupgrade.instance import EngineLock, Instance

UNIT = "activeupgrade-livepaths.service"
WANTED_BY = "local-fs.target"
UNIT_DIR = "/etc/systemd/system"


def unit_text(au: str, home: str) -> str:
    """The unit for the ``au`` program at ``au`` and the instance at ``home``."""
    return f"""\
# Attaches the live path of every Active Upgrade volume to the replica it must show, as
# soon as the local filesystems are mounted and before anything else starts (after a
# reboot the live paths show their original directories, replica A). `au host install`
# puts it in place and enables it; `au host status` shows what it did.
[Unit]
Description=Active Upgrade: attach the live paths of the volumes
Documentation=man:au(1)
DefaultDependencies=no
RequiresMountsFor={home}
After=local-fs-pre.target
Before=local-fs.target sysinit.target shutdown.target
Conflicts=shutdown.target
ConditionPathExists={home}/state.db

[Service]
Type=oneshot
RemainAfterExit=yes
Environment=AU_HOME={home}
ExecStart={au} host attach

[Install]
WantedBy={WANTED_BY}
"""


def _au_program() -> str:
    """The ``au`` this process runs as (its venv's, else the one on PATH)."""
    beside = Path(sys.executable).with_name("au")
    if beside.exists():
        return str(beside)
    found = shutil.which("au")
    if found is None:
        raise InstanceError("cannot find the `au` program to put in the unit",
                            hint="Give it with `au host install --au PATH`.")
    return os.path.realpath(found)


def _paths(unit_dir: str) -> tuple[Path, Path]:
    folder = Path(unit_dir)
    return folder / UNIT, folder / f"{WANTED_BY}.wants" / UNIT


def _reload() -> None:
    """Tell a running systemd (none in a container without it: nothing to tell)."""
    if os.path.isdir("/run/systemd/system") and proc.which("systemctl"):
        proc.run(["systemctl", "daemon-reload"], timeout=60, check=False)


def _install(args: argparse.Namespace) -> int:
    instance = Instance.from_env()
    unit, wants = _paths(args.unit_dir)
    text = unit_text(args.au or _au_program(), str(instance.home))
    unit.parent.mkdir(parents=True, exist_ok=True)
    write_durably(unit, text.encode())
    os.chmod(unit, 0o644)
    wants.parent.mkdir(parents=True, exist_ok=True)
    if wants.is_symlink() or wants.exists():
        wants.unlink()
    wants.symlink_to(unit)
    _reload()
    print(f"{unit} installed and enabled ({WANTED_BY}): the live paths of {instance.home} "
          "are attached at every boot before other units start")
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    unit, wants = _paths(args.unit_dir)
    removed = [str(p) for p in (wants, unit) if p.is_symlink() or p.exists()]
    for p in (wants, unit):
        if p.is_symlink() or p.exists():
            p.unlink()
    _reload()
    print("removed " + ", ".join(removed) if removed else f"{UNIT} was not installed")
    return 0


def _volumes(instance: Instance) -> list[dict[str, Any]]:
    from activeupgrade.platform.volumes import registry
    from activeupgrade.store.db import Store

    if not instance.db.exists():
        return []
    store = Store(instance.db)
    try:
        return [{"name": v.name, "path": v.path, "shows": v.live(), "must_show": v.intended,
                 "problem": v.problem()} for v in registry.all_volumes(store)]
    finally:
        store.close()


def _status(args: argparse.Namespace) -> int:
    instance = Instance.from_env()
    unit, wants = _paths(args.unit_dir)
    vols = _volumes(instance)
    info = {"unit": str(unit), "installed": unit.exists(), "enabled": wants.exists(),
            "volumes": vols}
    if args.json:
        print_json(info)
        return 0
    state = ("installed and enabled" if info["enabled"] else
             "installed, not enabled" if info["installed"] else "not installed")
    print(f"boot unit {UNIT}: {state}" + ("" if info["enabled"] else
                                          " (run `au host install`)"))
    rows = [[v["name"], v["path"], str(v["shows"]), v["must_show"], v["problem"] or "ok"]
            for v in vols]
    if rows:
        print(table(rows, ["NAME", "PATH", "SHOWS", "MUST SHOW", "PROBLEM"]))
    return 0


def _attach(args: argparse.Namespace) -> int:
    from activeupgrade.platform.volumes import registry
    from activeupgrade.store.db import Store

    instance = Instance.from_env()
    if not instance.db.exists():
        print(f"no instance at {instance.home}: nothing to attach")
        return 0
    # the engine's lock: no daemon changes the volumes meanwhile
    lock = EngineLock(instance)
    try:
        lock.acquire()
    except InstanceError as exc:
        raise InstanceError(exc.message, hint="The daemon runs (it attached the live paths "
                            "when it started): use `au volume attach NAME`, see "
                            "`au host status`.") from None
    try:
        store = Store(instance.db)
        try:
            done, _ = registry.reattach(store)  # what failed is still a problem, below
            left = [f"{v.path}: {p}" for v in registry.all_volumes(store)
                    if (p := v.problem()) is not None]
        finally:
            store.close()
    finally:
        lock.release()
    for line in done:
        print(line)
    if left:
        raise VolumeError("some live paths could not be attached: " + "; ".join(left),
                      hint="See `au host status`; the daemon tries again when it starts.")
    if not done:
        print("every live path shows the replica it must show")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("host", help="the boot unit that attaches live paths early at boot")
    hs = p.add_subparsers(dest="host_cmd", required=True)
    ins = hs.add_parser("install", help=f"install and enable {UNIT}")
    ins.add_argument("--au", default="", help="the au program the unit runs "
                     "(default: this one)")
    un = hs.add_parser("uninstall", help=f"disable and remove {UNIT}")
    st = hs.add_parser("status", help="the boot unit and what each live path shows")
    st.add_argument("--json", action="store_true")
    at = hs.add_parser("attach", help="attach every live path now (what the unit runs)")
    for q in (ins, un, st, at):
        q.add_argument("--unit-dir", default=UNIT_DIR, help=argparse.SUPPRESS)
    ins.set_defaults(func=_install)
    un.set_defaults(func=_uninstall)
    st.set_defaults(func=_status)
    at.set_defaults(func=_attach)
