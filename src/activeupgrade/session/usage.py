"""Which application services use files the upgrade changed (reported at PrepareMerge).

For each service: the files it runs from (its command and, for a script, its interpreter;
for a systemd unit, the unit file and the programs of ExecStart) and, while it runs, what
its process has mapped (``/proc/PID/exe`` and the files in ``/proc/PID/maps``: libraries,
the interpreter, data files). Each of these that lies on a system volume of the session is
compared between the Production replica and the Upgrade Side's (type, size, and content
when the size is equal): those that differ, or that the upgrade removed, are listed.
Only the files a service uses are compared, so this costs little whatever the volume size.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from typing import Any

from activeupgrade import proc
from activeupgrade.config.model import Config, ServiceBackend, ServiceSpec, VolumeRole
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import AUError
from activeupgrade.instance import Instance
from activeupgrade.model.states import Severity, Side
from activeupgrade.platform.services.backend import backend_kind
from activeupgrade.platform.services.backends import backend_for
from activeupgrade.platform.side.mounts import under
from activeupgrade.platform.volumes import registry
from activeupgrade.store.db import Store


def _resolve(program: str) -> str:
    if os.path.isabs(program):
        return program
    return shutil.which(program, path=proc.SAFE_PATH) or ""


def _interpreter(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return ""
    if not head.startswith(b"#!"):
        return ""
    words = head[2:].split(b"\n", 1)[0].split()
    if not words:
        return ""
    program = os.fsdecode(words[0])
    if os.path.basename(program) == "env" and len(words) > 1:
        return _resolve(os.fsdecode(words[1]))
    return program


def _unit_files(unit: str) -> tuple[list[str], int]:
    """(files, main pid) of a systemd unit, from ``systemctl show``."""
    systemctl = proc.which("systemctl")
    if systemctl is None:
        return [], 0
    done = proc.run([systemctl, "show", unit, "-p", "FragmentPath", "-p", "ExecStart",
                     "-p", "MainPID"], check=False, timeout=30)
    files, pid = [], 0
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "FragmentPath" and value:
            files.append(value)
        elif key == "ExecStart":  # { path=/usr/sbin/nginx ; argv[]=... } per command
            for part in value.split(";"):
                part = part.strip().lstrip("{").strip()
                if part.startswith("path="):
                    files.append(part[5:].strip())
        elif key == "MainPID" and value.isdigit():
            pid = int(value)
    return files, pid


def _mapped(pid: int) -> list[str]:
    """The executable and the files ``pid`` has mapped (empty when it is gone)."""
    found: list[str] = []
    try:
        found.append(os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)"))
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    found.append(parts[5].strip().removesuffix(" (deleted)"))
    except OSError:
        return found
    return found


def used_files(spec: ServiceSpec, instance: Instance, store: Store) -> tuple[list[str], int]:
    """The files ``spec`` uses, and the pid they were read from (0: not running)."""
    files: list[str] = []
    pid = 0
    if backend_kind(spec) is ServiceBackend.SYSTEMD and spec.unit:
        files, pid = _unit_files(spec.unit)
    elif spec.command:
        program = _resolve(spec.command[0])
        files = [p for p in (program, _interpreter(program)) if p]
        try:
            status = backend_for(spec, instance, store).status(spec)
            pid = status.pid if status.running else 0
        except AUError:
            pid = 0
    if pid:
        files += _mapped(pid)
    return sorted(set(files)), pid


def _differs(before: str, after: str) -> bool:
    try:
        a, b = os.lstat(before), os.lstat(after)
    except FileNotFoundError:
        return True
    if (a.st_mode, a.st_size) != (b.st_mode, b.st_size):
        return True
    if os.path.islink(before):
        return os.readlink(before) != os.readlink(after)
    if not os.path.isfile(before):
        return False
    return not filecmp.cmp(before, after, shallow=False)


def services_using_changes(instance: Instance, store: Store, cfg: Config
                           ) -> dict[str, dict[str, Any]]:
    """For every service: the files it uses that the upgrade changed, removed or added."""
    systems = [v for v in registry.for_config(store, cfg)
               if v.role is VolumeRole.SYSTEM and v.session.get("upgrade")]
    out: dict[str, dict[str, Any]] = {}
    for spec in cfg.services:
        files, pid = used_files(spec, instance, store)
        changed = []
        for path in files:
            vol = next((v for v in systems if under(path, v.path)), None)
            if vol is None:
                continue
            rel = os.path.relpath(path, vol.path)
            before = os.path.join(vol.replica(vol.session["original"]), rel)
            after = os.path.join(vol.replica(vol.session["upgrade"]), rel)
            if _differs(before, after):
                changed.append(path)
        out[spec.name] = {"files": changed, "checked": len(files), "pid": pid}
    return out


def service_files(ctx: StepContext) -> None:
    """PrepareMerge: log which services use files the upgrade changed."""
    found = services_using_changes(ctx.instance, ctx.store, ctx.config)
    for name, item in found.items():
        files = item["files"]
        ctx.write("side.service-files",
                  f"service {name} uses {len(files)} file(s) the upgrade changed"
                  + (": " + ", ".join(files[:6]) + (" …" if len(files) > 6 else "")
                     if files else ""),
                  severity=Severity.NOTICE if files else Severity.INFO, details=item)
    ctx.results["service_files"] = {n: len(i["files"]) for n, i in found.items()}


def steps(cfg: Config) -> list[Step]:
    """The PrepareMerge step (none without services)."""
    if not cfg.services:
        return []
    return [Step("side.service-files", service_files, 300, "list the services that use "
                 "files the upgrade changed", Side.UPGRADE)]
