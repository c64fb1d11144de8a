"""The effective configuration from the files in reading order (see ``nesting.py``).

Rules (SPEC §8): the first file that gives a setting wins (the parent over its children);
services and actions are merged by name; ``backup.paths`` and ``upgrade_side.packages``
collect every file's entries; only the top file selects volumes (children's selections are
ignored with a notice). Every setting records the file it came from (``provenance``).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from activeupgrade.config.model import (
    ActionSpec,
    BackupSpec,
    Config,
    ControlType,
    Handover,
    HealthKind,
    HealthSpec,
    MergeSpec,
    Readiness,
    ServiceBackend,
    ServiceSpec,
    SocketSpec,
    Switchover,
    Timing,
    UpgradeSideSpec,
    VolumeRole,
    VolumeSpec,
)
from activeupgrade.config.reader import FileSettings
from activeupgrade.config.schema import (
    ACTION,
    BACKUP,
    HEALTH,
    MERGE,
    SERVICE,
    SOCKET,
    UPGRADE_SIDE,
)
from activeupgrade.config.validate import several
from activeupgrade.errors import ConfigError

DEFAULT = "(default)"
"""Provenance of a setting no file gives."""


def overlaps(a: str, b: str) -> bool:
    """True when one path is the other or lies inside it."""
    pa, pb = PurePosixPath(a), PurePosixPath(b)
    return pa == pb or pa in pb.parents or pb in pa.parents


def _check_volumes(fs: FileSettings) -> None:
    volumes = fs.data.get("volume", [])
    for i, vol in enumerate(volumes):
        for j in range(i):
            other = volumes[j]["path"]
            if overlaps(vol["path"], other):
                same = vol["path"] == other
                raise fs.source.error(
                    ("volume", i, "path"), f"volume[{i + 1}].path",
                    f"{vol['path']} is listed twice" if same else
                    f"{vol['path']} overlaps volume {other} (line "
                    f"{fs.source.line(('volume', j, 'path'))}): volumes must not overlap",
                    hint="Remove the duplicate." if same else
                    "Select either the parent folder or the folders inside it, not both.",
                )
        if vol.get("checkpoint") and vol.get("role", "system") != VolumeRole.DATA.value:
            raise fs.source.error(
                ("volume", i, "checkpoint"), f"volume[{i + 1}].checkpoint",
                f"{vol['path']} is a {vol.get('role', 'system')} volume: a checkpoint is only "
                "for data volumes (system volumes keep their original replica until Commit "
                "anyway)",
                hint='Set role = "data", or remove checkpoint = true.')


def _check_checkpoints(top: FileSettings, services: list[ServiceSpec]) -> None:
    """A checkpoint is taken while the applications are stopped: every service must stop
    before the switch (stop-start), or the checkpoint would copy data being written."""
    running = [s for s in services if s.switchover is not Switchover.STOP_START]
    if not running:
        return
    for i, vol in enumerate(top.data.get("volume", [])):
        if vol.get("checkpoint"):
            names = ", ".join(f"{s.name} ({s.switchover.value})" for s in running)
            raise top.source.error(
                ("volume", i, "checkpoint"), f"volume[{i + 1}].checkpoint",
                f"the checkpoint of {vol['path']} is taken while the applications are "
                f"stopped, but service(s) {names} keep running through the switch",
                hint='Use switchover = "stop-start" for those services, or remove '
                'checkpoint = true from this volume.')


def _unique(fs: FileSettings, table: str, items: list[dict[str, Any]], names: list[str],
            what: str, at: tuple[str | int, ...] = ()) -> None:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            line = fs.source.line((*at, table, first[name]))
            raise fs.source.error(
                (*at, table, i), f"{what}[{i + 1}].name",
                f"duplicate {what} name {name!r} (first at line {line})",
                hint=f"Give each {what} its own name.",
            )
        first[name] = i


def _check_service(fs: FileSettings, i: int, svc: dict[str, Any]) -> None:
    at = ("service", i)
    label = f"service.{svc['name']}"
    backend = svc.get("backend", "auto")
    if backend == "supervisor" and not svc.get("command"):
        raise fs.source.error(at, f"{label}.command", "the supervisor backend needs a command",
                              hint='Add command = ["/path/to/app", "args"].')
    if backend == "systemd" and not svc.get("unit"):
        raise fs.source.error(at, f"{label}.unit", "the systemd backend needs a unit",
                              hint='Add unit = "shop.service".')
    if backend == "auto" and not svc.get("command") and not svc.get("unit"):
        raise fs.source.error(at, f"{label}.command", "a service needs a command or a unit",
                              hint='Add command = ["/path/to/app"] or unit = "app.service".')
    _unique(fs, "socket", svc.get("socket", []), [s["name"] for s in svc.get("socket", [])],
            "socket", at)
    _check_handover(fs, at, label, svc)
    health = svc.get("health", {})
    kind, target = health.get("kind", "none"), health.get("target", "")
    hat = (*at, "health")
    if kind == "tcp" and ":" not in target:
        raise fs.source.error((*hat, "target"), f"{label}.health.target",
                              "a tcp health check needs target = \"HOST:PORT\"",
                              hint='Write e.g. target = "127.0.0.1:8080".')
    if kind == "http" and not target.startswith(("http://", "https://")):
        raise fs.source.error((*hat, "target"), f"{label}.health.target",
                              "an http health check needs a URL target",
                              hint='Write e.g. target = "http://127.0.0.1:8080/health".')
    if kind == "command" and not health.get("argv"):
        raise fs.source.error((*hat, "argv"), f"{label}.health.argv",
                              "a command health check needs argv",
                              hint='Write e.g. argv = ["/usr/bin/curl", "-f", "http://..."].')


def _check_handover(fs: FileSettings, at: tuple[str | int, ...], label: str,
                    svc: dict[str, Any]) -> None:
    """The handover, its sockets' upstreams and the switchover must fit together."""
    handover = svc.get("handover", "listen-fds")
    sockets = svc.get("socket", [])
    if handover == "proxy":
        if not sockets:
            raise fs.source.error((*at, "handover"), f"{label}.handover",
                                  "handover = \"proxy\" relays held sockets: the service has "
                                  "none", hint="Add a [[service.socket]] with listen and "
                                  "upstream.")
        for j, sock in enumerate(sockets):
            if not sock.get("upstream"):
                raise fs.source.error(
                    (*at, "socket", j), f"{label}.socket.{sock['name']}.upstream",
                    "handover = \"proxy\" needs the private address the daemon binds",
                    hint='Add upstream = "127.0.0.1:PORT" (the daemon listens there).')
        if svc.get("switchover") == "overlap":
            raise fs.source.error(
                (*at, "switchover"), f"{label}.switchover",
                "switchover = \"overlap\" needs a shared socket; with the proxy the daemon "
                "binds its own port", hint='Use "late-stop" or "stop-start" with the proxy.')
        return
    for j, sock in enumerate(sockets):
        if sock.get("upstream"):
            raise fs.source.error(
                (*at, "socket", j, "upstream"), f"{label}.socket.{sock['name']}.upstream",
                f"upstream is only used with handover = \"proxy\" (this one is "
                f"\"{handover}\")", hint='Remove it, or set handover = "proxy".')


SCRATCH_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?[kKmMgGtT%]?$")
"""tmpfs's ``size=``: bytes, with a k/m/g/t suffix, or a share of memory in %."""


def _check_link(fs: FileSettings) -> None:
    side = fs.data.get("upgrade_side", {})
    size = side.get("scratch_size")
    if size is not None and not SCRATCH_SIZE.match(size):
        raise fs.source.error(("upgrade_side", "scratch_size"), "upgrade_side.scratch_size",
                              f"{size!r} is not a size",
                              hint='Write a size such as "4G" or "512M", or a share of '
                              'memory such as "25%".')
    given = [k for k in ("host_address", "side_address") if side.get(k)]
    if not given:
        return
    if len(given) == 1:
        missing = "side_address" if given == ["host_address"] else "host_address"
        raise fs.source.error(("upgrade_side", given[0]), f"upgrade_side.{missing}",
                              f"{given[0]} is set but {missing} is not",
                              hint="Set both ends of the private link, or neither (a free "
                              "/30 is then chosen for this instance).")
    host = ipaddress.ip_interface(side["host_address"])
    peer = ipaddress.ip_interface(side["side_address"])
    at = ("upgrade_side", "side_address")
    if host.ip == peer.ip:
        raise fs.source.error(at, "upgrade_side.side_address",
                              "the two ends of the private link have the same address",
                              hint="Give side_address another address of the same subnet.")
    if host.network != peer.network:
        raise fs.source.error(at, "upgrade_side.side_address",
                              f"{peer} is not in the subnet of host_address ({host.network})",
                              hint="Put both ends of the private link in one small subnet "
                              "(e.g. 169.254.77.1/30 and 169.254.77.2/30).")


def check_file(fs: FileSettings) -> None:
    """Rules that span several settings of one file (duplicates, overlaps, coherence);
    every rule broken is reported in one ConfigError."""
    services = fs.data.get("service", [])
    actions = fs.data.get("action", [])
    rules: list[Callable[[], None]] = [
        lambda: _check_volumes(fs),
        lambda: _unique(fs, "service", services, [s["name"] for s in services], "service"),
        *[(lambda i=i, svc=svc: _check_service(fs, i, svc)) for i, svc in enumerate(services)],
        lambda: _unique(fs, "action", actions, [action_name(a) for a in actions], "action"),
        lambda: _check_link(fs),
    ]
    errors: list[ConfigError] = []
    for rule in rules:
        try:
            rule()
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise several(fs.source.path, errors)


def action_name(action: dict[str, Any]) -> str:
    return str(action.get("name") or posixpath.basename(action["file"]))


UPGRADE_SIDE_DEFAULTS = {f.key: f.default for f in UPGRADE_SIDE.fields}


class Merger:
    """Accumulates files in reading order into one Config."""

    def __init__(self, files: list[FileSettings]) -> None:
        self.files = files
        self.provenance: dict[str, str] = {}
        self.notices: list[str] = []

    def _take(self, key: str, file: str) -> bool:
        """Record ``key`` as coming from ``file`` unless an earlier file gave it."""
        if key in self.provenance and self.provenance[key] != DEFAULT:
            return False
        self.provenance[key] = file
        return True

    def build(self) -> Config:
        top = self.files[0]
        for fs in self.files:
            check_file(fs)
        description = ""
        services: dict[str, ServiceSpec] = {}
        actions: dict[str, ActionSpec] = {}
        scalars: dict[str, Any] = {}
        backup_paths: list[str] = []
        packages: list[str] = []
        for fs in self.files:
            f = str(fs.path)
            data = fs.data
            if "description" in data and self._take("description", f):
                description = data["description"]
            if fs is not top and data.get("volume"):
                self.notices.append(
                    f"{fs.path.name}: its volume selection ({len(data['volume'])} volume(s)) "
                    f"is ignored: only the top file {top.path.name} selects volumes"
                )
            for svc in data.get("service", []):
                self._service(svc, f, services)
            for act in data.get("action", []):
                self._action(act, f, actions)
            for section, fields in (("backup", BACKUP.fields), ("merge", MERGE.fields),
                                    ("upgrade_side", UPGRADE_SIDE.fields)):
                table = data.get(section, {})
                for field in fields:
                    if field.key in ("paths", "packages") or field.key not in table:
                        continue
                    key = f"{section}.{field.key}"
                    if self._take(key, f):
                        scalars[key] = table[field.key]
                    elif scalars[key] != table[field.key]:
                        self.notices.append(
                            f"{fs.path.name}: {key} ignored: {self.provenance[key]} sets it "
                            "(the parent wins)"
                        )
            for item in data.get("backup", {}).get("paths", []):
                if self._take(f"backup.paths[{item}]", f):
                    backup_paths.append(item)
            for item in data.get("upgrade_side", {}).get("packages", []):
                if self._take(f"upgrade_side.packages[{item}]", f):
                    packages.append(item)
        volumes = []
        for vol in top.data.get("volume", []):
            key = f"volume.{vol['path']}"
            self.provenance[key] = str(top.path)
            self.provenance[f"{key}.role"] = str(top.path) if "role" in vol else DEFAULT
            self.provenance[f"{key}.checkpoint"] = (str(top.path) if "checkpoint" in vol
                                                    else DEFAULT)
            volumes.append(VolumeSpec(vol["path"], VolumeRole(vol.get("role", "system")),
                                      checkpoint=bool(vol.get("checkpoint", False))))
        _check_checkpoints(top, list(services.values()))
        for section, fields in (("backup", BACKUP.fields), ("merge", MERGE.fields),
                                ("upgrade_side", UPGRADE_SIDE.fields)):
            for field in fields:
                if field.key not in ("paths", "packages"):
                    self.provenance.setdefault(f"{section}.{field.key}", DEFAULT)
        self.provenance.setdefault("description", DEFAULT)
        side = {k: scalars.get(f"upgrade_side.{k}", UPGRADE_SIDE_DEFAULTS[k])
                for k in ("host_address", "side_address", "hostname", "isolation", "outside",
                          "scratch_size")}
        return Config(
            description=description,
            volumes=tuple(volumes),
            services=tuple(services.values()),
            actions=tuple(actions.values()),
            backup=BackupSpec(tuple(backup_paths), scalars.get("backup.folder", "")),
            upgrade_side=UpgradeSideSpec(**side, packages=tuple(packages)),
            merge=MergeSpec(float(scalars.get("merge.confirm_within", 0.0))),
            source=str(top.path),
            files=tuple(str(fs.path) for fs in self.files),
            provenance=dict(sorted(self.provenance.items())),
            notices=tuple(self.notices),
        )

    def _record(self, prefix: str, table: dict[str, Any], fields: tuple[Any, ...],
                file: str) -> None:
        self.provenance[prefix] = file
        for field in fields:
            if field.key in ("socket", "health"):
                continue
            self.provenance[f"{prefix}.{field.key}"] = file if field.key in table else DEFAULT

    def _service(self, svc: dict[str, Any], file: str, into: dict[str, ServiceSpec]) -> None:
        name = svc["name"]
        if name in into:
            self.notices.append(
                f"{posixpath.basename(file)}: service {name!r} ignored: "
                f"{self.provenance[f'service.{name}']} defines it (the parent wins)"
            )
            return
        prefix = f"service.{name}"
        self._record(prefix, svc, SERVICE.fields, file)
        health = svc.get("health", {})
        self._record(f"{prefix}.health", health, HEALTH.fields, file)
        if "health" not in svc:
            self.provenance[f"{prefix}.health"] = DEFAULT
        for sock in svc.get("socket", []):
            self._record(f"{prefix}.socket.{sock['name']}", sock, SOCKET.fields, file)
        into[name] = ServiceSpec(
            name=name,
            command=tuple(svc.get("command", ())),
            backend=ServiceBackend(svc.get("backend", "auto")),
            unit=svc.get("unit", ""),
            workdir=svc.get("workdir", ""),
            env=tuple(svc.get("env", {}).items()),
            user=svc.get("user", ""),
            sockets=tuple(SocketSpec(s["name"], s["listen"], s.get("backlog", 1024),
                                     s.get("upstream", ""))
                          for s in svc.get("socket", [])),
            health=HealthSpec(
                kind=HealthKind(health.get("kind", "none")),
                target=health.get("target", ""),
                argv=tuple(health.get("argv", ())),
                timeout=health.get("timeout", 5.0),
                interval=health.get("interval", 0.2),
            ),
            stop_signal=svc.get("stop_signal", "SIGTERM"),
            stop_grace=svc.get("stop_grace", 10.0),
            start_timeout=svc.get("start_timeout", 30.0),
            enabled=svc.get("enabled", True),
            handover=Handover(svc.get("handover", "listen-fds")),
            switchover=Switchover(svc.get("switchover", "stop-start")),
            ready=Readiness(svc.get("ready", "probe")),
            hold_limit=svc.get("hold_limit", 30.0),
        )

    def _action(self, act: dict[str, Any], file: str, into: dict[str, ActionSpec]) -> None:
        name = action_name(act)
        if name in into:
            self.notices.append(
                f"{posixpath.basename(file)}: action {name!r} ignored: "
                f"{self.provenance[f'action.{name}']} defines it (the parent wins)"
            )
            return
        self._record(f"action.{name}", act, ACTION.fields, file)
        into[name] = ActionSpec(
            name=name,
            file=act["file"],
            control=ControlType(act["control"]),
            args=tuple(act.get("args", ())),
            timing=Timing.parse(act.get("timing", "default")),
            timeout=act.get("timeout", 300.0),
            user=act.get("user", ""),
            description=act.get("description", ""),
        )


def build_config(files: list[FileSettings]) -> Config:
    """The effective configuration of ``files`` (reading order, top file first)."""
    if not files:
        raise ConfigError("no configuration file to build from")
    return Merger(files).build()
