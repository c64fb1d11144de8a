"""The effective configuration with the file of every setting (``au config show``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from activeupgrade.config.merge import DEFAULT
from activeupgrade.config.model import Config


def _service_settings(cfg: Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for svc in cfg.services:
        p = f"service.{svc.name}"
        out.update({
            f"{p}.name": svc.name, f"{p}.command": list(svc.command),
            f"{p}.backend": svc.backend.value, f"{p}.unit": svc.unit,
            f"{p}.workdir": svc.workdir, f"{p}.env": dict(svc.env), f"{p}.user": svc.user,
            f"{p}.stop_signal": svc.stop_signal, f"{p}.stop_grace": svc.stop_grace,
            f"{p}.start_timeout": svc.start_timeout, f"{p}.enabled": svc.enabled,
            f"{p}.handover": svc.handover.value, f"{p}.switchover": svc.switchover.value,
            f"{p}.ready": svc.ready.value, f"{p}.hold_limit": svc.hold_limit,
            f"{p}.health.kind": svc.health.kind.value, f"{p}.health.target": svc.health.target,
            f"{p}.health.argv": list(svc.health.argv), f"{p}.health.timeout": svc.health.timeout,
            f"{p}.health.interval": svc.health.interval,
        })
        for sock in svc.sockets:
            s = f"{p}.socket.{sock.name}"
            out.update({f"{s}.name": sock.name, f"{s}.listen": sock.listen,
                        f"{s}.backlog": sock.backlog, f"{s}.upstream": sock.upstream})
    return out


def settings(cfg: Config) -> dict[str, Any]:
    """Setting path → effective value, with the same paths as ``cfg.provenance``."""
    out: dict[str, Any] = {"description": cfg.description}
    for vol in cfg.volumes:
        out[f"volume.{vol.path}.role"] = vol.role.value
    out.update(_service_settings(cfg))
    for a in cfg.actions:
        p = f"action.{a.name}"
        out.update({f"{p}.name": a.name, f"{p}.file": a.file, f"{p}.args": list(a.args),
                    f"{p}.control": a.control.value, f"{p}.timing": a.timing.value,
                    f"{p}.timeout": a.timeout, f"{p}.user": a.user,
                    f"{p}.description": a.description})
    out["backup.folder"] = cfg.backup.folder
    for path in cfg.backup.paths:
        out[f"backup.paths[{path}]"] = path
    side = cfg.upgrade_side
    out.update({"upgrade_side.host_address": side.host_address,
                "upgrade_side.side_address": side.side_address,
                "upgrade_side.hostname": side.hostname,
                "upgrade_side.isolation": side.isolation,
                "upgrade_side.outside": side.outside,
                "upgrade_side.scratch_size": side.scratch_size})
    for path in side.packages:
        out[f"upgrade_side.packages[{path}]"] = path
    return out


def show_dict(cfg: Config) -> dict[str, Any]:
    """``au config show --json``: every setting with its value and origin."""
    values = settings(cfg)
    return {
        "source": cfg.source,
        "files": list(cfg.files),
        "notices": list(cfg.notices),
        "settings": {k: {"value": v, "from": cfg.provenance.get(k, DEFAULT)}
                     for k, v in values.items()},
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
    }


def show_lines(cfg: Config) -> list[str]:
    """``au config show``: ``setting = value`` with the file it came from."""
    values = settings(cfg)
    rows = [(f"{k} = {json.dumps(v)}", cfg.provenance.get(k, DEFAULT)) for k, v in
            values.items()]
    width = min(72, max((len(r[0]) for r in rows), default=0))
    out = ["Files (reading order; the first that gives a setting wins):"]
    out += [f"  {f}" for f in cfg.files] or ["  (none)"]
    out.append("")
    for text, origin in rows:
        shown = origin if origin == DEFAULT else Path(origin).name
        out.append(f"{text.ljust(width)}  # {shown}")
    if cfg.notices:
        out += ["", "Notices:"] + [f"  - {n}" for n in cfg.notices]
    return out
