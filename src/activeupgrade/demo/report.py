"""The demo's report: what the clients saw, what the tool measured, and the verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from activeupgrade.units import human_bytes


@dataclass
class Report:
    """Everything ``au demo`` prints (``--json`` prints this as a dict)."""

    ok: bool = False
    """True when every step ran, no request failed and no order was lost."""
    isolation: str = ""
    """How the Upgrade Side was isolated (namespaces as root, directory otherwise)."""
    root: str = ""
    """The demo's temporary tree."""
    au_home: str = ""
    """The demo's instance."""
    port: int = 0
    """Where the shop listened."""
    steps: list[dict[str, Any]] = field(default_factory=list)
    """Each step: name, seconds, and what it found."""
    versions: dict[str, str] = field(default_factory=dict)
    """The version the shop served at each checkpoint."""
    load: dict[str, Any] = field(default_factory=dict)
    """The load client's figures (requests, failures, latencies, longest waits)."""
    switchovers: list[dict[str, Any]] = field(default_factory=list)
    """``service.switchover`` measurements logged by the tool (merge and abort)."""
    resyncs: list[dict[str, Any]] = field(default_factory=list)
    """Resync figures logged by the tool (bytes, files, seconds)."""
    orders: dict[str, Any] = field(default_factory=dict)
    """Orders written and verified."""
    checks: dict[str, Any] = field(default_factory=dict)
    """Readiness checks of the first ``au check``."""
    actions: list[str] = field(default_factory=list)
    """Custom action runs recorded by the shop's hook: kind, side, request, state."""
    backups: list[str] = field(default_factory=list)
    """Backup folders the session left."""
    problems: list[str] = field(default_factory=list)
    """Why the demo failed, when it did."""
    kept: bool = False
    """True when ``--keep`` left the instance running."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        load = self.load
        lines = [
            "",
            "Active Upgrade demo report",
            "==========================",
            f"Isolation of the Upgrade Side: {self.isolation or 'unknown'}",
            f"Demo tree: {self.root}   instance (AU_HOME): {self.au_home}",
            f"Shop: http://127.0.0.1:{self.port}",
            "",
            "Steps:",
        ]
        for s in self.steps:
            note = f"  {s.get('note', '')}" if s.get("note") else ""
            lines.append(f"  {s['name']:<58} {s['seconds']:7.2f}s{note}")
        if self.versions:
            lines += ["", "Version served:"]
            lines += [f"  {k:<34} {v}" for k, v in self.versions.items()]
        if load:
            lines += [
                "",
                "Load (orders written and read back for the whole run, one connection each):",
                f"  requests sent / failed:  {load.get('requests_sent', 0)} / "
                f"{load.get('requests_failed', 0)}",
                f"  time per request:        mean {load.get('mean_ms', 0):.2f} ms, "
                f"p50 {load.get('p50_ms', 0):.2f} ms, p99 {load.get('p99_ms', 0):.2f} ms",
                f"  longest client wait:     {load.get('longest_wait_ms', 0):.1f} ms",
            ]
            for phase, ms in (load.get("longest_wait_ms_by_phase") or {}).items():
                lines.append(f"    during {phase:<20} {ms:.1f} ms")
            for failure in load.get("failures") or []:
                lines.append(f"  FAILED: {failure}")
        if self.switchovers:
            waits = (load or {}).get("longest_wait_ms_by_phase") or {}
            first = self.switchovers[0]
            lines += [
                "",
                f"Merge disruption: no instance serving for {first.get('gap_seconds', 0):.3f}s "
                f"(tool); longest client wait during the merge "
                f"{float(waits.get('merge', 0.0)):.1f} ms; failed requests "
                f"{(load or {}).get('requests_failed', 0)}",
            ]
            lines += ["", "Switchovers measured by the tool (service.switchover):"]
            for s in self.switchovers:
                lines.append(
                    f"  {s.get('label', ''):<22} stop {s.get('stop_seconds', 0):.3f}s, "
                    f"switch {s.get('switch_seconds', 0):.3f}s, start "
                    f"{s.get('start_seconds', 0):.3f}s, no instance serving for "
                    f"{s.get('gap_seconds', 0):.3f}s"
                )
        if self.resyncs:
            lines += ["", "Resyncs (volume.resync.done, copied only what differed):"]
            for r in self.resyncs:
                lines.append(
                    f"  {r.get('label', ''):<22} {human_bytes(float(r.get('bytes', 0))):>10} in "
                    f"{int(r.get('files', 0))} files, {float(r.get('seconds', 0)):.3f}s"
                    f"  ({r.get('volume', '')}, {int(r.get('scanned', 0))} entries compared)"
                )
        if self.orders:
            o = self.orders
            lines += [
                "",
                f"Orders: {o.get('orders_written', 0)} written, "
                f"{o.get('orders_verified', 0)} verified, {o.get('orders_lost', 0)} lost",
                "  written during: " + ", ".join(
                    f"{k} {v}" for k, v in (o.get("written_by_phase") or {}).items()),
            ]
        if self.checks:
            lines += ["", f"Readiness checks: {self.checks.get('passed', 0)} passed, "
                      f"{self.checks.get('warnings', 0)} warnings, "
                      f"{self.checks.get('errors', 0)} errors"]
        if self.actions:
            lines += ["", f"Custom action runs ({len(self.actions)}, as the hook recorded them):"]
            lines += [f"  {a}" for a in self.actions]
        if self.backups:
            where = "kept" if self.kept else "removed with the demo tree; --keep keeps them"
            lines += ["", f"Backups ({where}):"] + [f"  {b}" for b in self.backups]
        lines.append("")
        if self.ok:
            lines.append("RESULT: OK: 0 failed requests, 0 lost orders.")
        else:
            lines.append("RESULT: FAILED")
            lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)
