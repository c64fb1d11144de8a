"""The upgrade summary: the effective configuration in plain words (``au config summary``)."""

from __future__ import annotations

from pathlib import Path

from activeupgrade.config.model import (
    ActionSpec,
    Config,
    ControlType,
    HealthKind,
    ServiceBackend,
    ServiceSpec,
    Switchover,
    VolumeRole,
)

_WHEN = {
    ControlType.STOP_APPLICATION: "stop the applications (Upgrade Side at split, Production "
    "at merge)",
    ControlType.START_APPLICATION: "start the applications on the upgraded software at merge",
    ControlType.READINESS_CHECK: "take part in the readiness checks",
    ControlType.ADVANCED: "run at every request",
    ControlType.BACKUP: "save files from the old Production replicas at merge",
}


def seconds(value: float) -> str:
    """``90.0`` → ``1m30s``."""
    if value < 1:
        return f"{value * 1000:g}ms"
    whole = int(value)
    if whole != value or whole < 60:
        return f"{value:g}s"
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n)


def _service(svc: ServiceSpec) -> list[str]:
    if svc.backend is ServiceBackend.SYSTEMD or (svc.unit and not svc.command):
        how = f"systemd unit {svc.unit}"
    else:
        how = "supervised by the tool: " + " ".join(svc.command)
    lines = [f"  - {svc.name}: {how}" + ("" if svc.enabled else " (disabled at boot)")]
    for sock in svc.sockets:
        relay = f", relayed to {sock.upstream}" if sock.upstream else ""
        lines.append(f"      holds socket {sock.name} on {sock.listen} across the merge "
                     f"({svc.handover}{relay}; clients wait at most "
                     f"{seconds(svc.hold_limit)} instead of failing)")
    if svc.switchover is Switchover.OVERLAP:
        lines.append("      overlap: the new version serves before the old one gets "
                     f"{svc.stop_signal}")
    elif svc.switchover is Switchover.LATE_STOP:
        lines.append("      late-stop: the old version serves through the switch, then "
                     "stops right before the new one starts")
    if svc.health.kind is not HealthKind.NONE:
        probe = svc.health.target or " ".join(svc.health.argv)
        lines.append(f"      healthy when {svc.health.kind} {probe} answers, within "
                     f"{seconds(svc.start_timeout)}")
    lines.append(f"      stops with {svc.stop_signal}, killed after {seconds(svc.stop_grace)}")
    return lines


def _action(action: ActionSpec) -> str:
    extra = f" — {action.description}" if action.description else ""
    return (f"  - {action.name} ({action.control}, {action.timing}): {action.file} "
            f"{' '.join(action.args)}".rstrip() + f", at most {seconds(action.timeout)}{extra}")


def summary_lines(cfg: Config) -> list[str]:
    """The summary, one line per list item."""
    top = Path(cfg.source).name if cfg.source else "no configuration file"
    out = [f"Upgrade summary ({top})"]
    if cfg.description:
        out.append(f"  {cfg.description}")
    out.append("")
    out.append(f"Volumes ({len(cfg.volumes)}):")
    for vol in cfg.volumes:
        role = ("system: upgraded on the Upgrade Side" if vol.role is VolumeRole.SYSTEM
                else "data: never seen by the Upgrade Side, follows the applications")
        out.append(f"  - {vol.path} ({role})")
        if vol.checkpoint:
            out.append("      checkpoint at merge (applications stopped): an abort from Merge "
                       "returns it there, the writes since saved aside")
    if not cfg.volumes:
        out.append("  none selected: a session uses every adopted volume")
    if cfg.merge.confirm_within:
        out += ["", f"Confirmation after merge: within {seconds(cfg.merge.confirm_within)} "
                "(`au confirm` or `au commit`), otherwise the merge is aborted automatically"]
    out += ["", f"Services ({len(cfg.services)}): stopped and disabled on the Upgrade Side at "
            "split; at merge stopped on Production and started on the upgraded software"]
    for svc in cfg.services:
        out += _service(svc)
    out += ["", f"Custom actions ({len(cfg.actions)}), in the order they run:"]
    for control in ControlType:
        found = cfg.actions_of(control)
        if found:
            out.append(f" {control}: {_WHEN[control]}")
            out += [_action(a) for a in found]
    out += ["", "Backup at merge:"]
    if cfg.backup.paths:
        folder = cfg.backup.folder or "AU_HOME/backups"
        out += [f"  - {p}" for p in cfg.backup.paths]
        out.append(f"  into a timestamped folder under {folder}")
    else:
        out.append("  nothing selected")
    side = cfg.upgrade_side
    out += ["", "Upgrade Side:",
            f"  isolation {side.isolation}; private link "
            + (f"host {side.host_address} ↔ side {side.side_address}" if side.host_address
               else "addresses chosen for this instance when it starts")
            + f"; hostname {side.hostname or '<host>-upgrade'}",
            f"  outside the volumes: {side.outside} (scratch up to {side.scratch_size})"]
    for pkg in side.packages:
        out.append(f"  needs locally: {pkg}")
    if cfg.files:
        out += ["", "Files:"]
        out += [f"  - {f}" + (" (top)" if i == 0 else " (included)")
                for i, f in enumerate(cfg.files)]
    if cfg.notices:
        out += ["", "Notices:"] + [f"  - {n}" for n in cfg.notices]
    return out
