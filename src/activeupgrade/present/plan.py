"""The plan of a session in plain lines (``au plan``, the consoles' Upgrade Summary)."""

from __future__ import annotations

from typing import Any

from activeupgrade.units import human_bytes


def _checks(plan: dict[str, Any]) -> list[str]:
    checks = plan["checks"]
    bad = [c for c in checks if not c["ok"]]
    out = [f"Readiness ({len(checks)} checks, run read-only): "
           + ("READY" if plan["ready"] else "NOT READY")]
    for c in bad:
        out.append(f"  {'FAIL' if c['severity'] == 'error' else 'warn'} {c['id']} {c['name']}: "
                   f"{c['message']}")
        out.append(f"       → {c['action']}")
    return out


def _rollback(plan: dict[str, Any]) -> list[str]:
    """The confirmation window and the data checkpoints."""
    from activeupgrade.present.rollback import checkpoint_lines

    out = []
    within = float(plan.get("confirm_within") or 0)
    if within:
        out += ["", f"Confirmation after merge: within {within:g}s (`au confirm`, or `au "
                "commit`); otherwise the daemon aborts from Merge by itself"]
    cks = plan.get("checkpoints") or []
    if cks:
        out += ["", "Data checkpoints (pre-synced at PrepareMerge, taken at ExecuteMerge "
                "while the applications are stopped; the copy of what changed since the "
                "pre-sync adds to the disruption):"]
        frozen = [c["checkpoint"] for c in cks if c.get("checkpoint")]
        out += [f"  {line}" for line in checkpoint_lines({"facts": {"checkpoints": frozen}})]
        out += [f"  {c['path']}: not taken yet" for c in cks if not c.get("checkpoint")]
    return out


def plan_lines(plan: dict[str, Any]) -> list[str]:
    cfg = plan["config"]
    out = [f"Plan of {cfg['source'] or 'a session without a configuration file'}"]
    if cfg["description"]:
        out.append(f"  {cfg['description']}")
    out += ["", *_checks(plan), "", "Volumes:"]
    out += [f"  {v['path']} ({v['role']}"
            + (", checkpoint at merge: restorable by an abort from Merge)"
               if v.get("checkpoint") else ")") for v in plan["volumes"]] or ["  none"]
    out += ["", "Requests and their steps:"]
    for r in plan["requests"]:
        title = r["request"] + (f" (from {r['abort_from']})" if r["abort_from"] else "")
        names = ", ".join(s["name"] for s in r["steps"]) or "(no steps)"
        out.append(f"  {title}: {names}")
    out += ["", "Services:"]
    for s in plan["services"]:
        measured = s["measured"]
        known = (f"last measured: stop {measured['stop_seconds']:.2f}s, start "
                 f"{measured['start_seconds']:.2f}s" if measured else "never measured")
        out.append(f"  {s['name']} ({s['backend']}): at split {s['at_split']}; at merge "
                   f"{s['at_merge']}; {known}")
        if s.get("held_sockets"):
            out.append(f"      sockets {', '.join(s['held_sockets'])} handed over as "
                       f"{s['handover']}; clients wait at most {s['hold_limit']:g}s while no "
                       "instance serves, then their connection is closed")
    if not plan["services"]:
        out.append("  none")
    out += ["", "Custom actions in the order they run"
            + (" (run now with ACTIVE_UPGRADE_DRY_RUN=1):" if plan["actions_run"] else
               " (not run; --run-actions runs them in a dry run):")]
    for r in plan["actions"]:
        if r["actions"]:
            out.append(f"  {r['request']}: " + ", ".join(
                f"{a['name']}@{a['side']}" for a in r["actions"]))
    for res in plan.get("action_results", []):
        if "skipped" in res:
            out.append(f"  not run: {', '.join(res['skipped'])} ({res['reason']})")
        else:
            out.append(f"  ran {res['name']}: {'ok' if res['ok'] else res['reason']}")
    b = plan["backup"]
    out += ["", f"Backup at merge into {b['folder']}: {len(b['files'])} file(s), "
            f"{human_bytes(b['bytes'])} now"]
    out += [f"  {f['path']}" + (f" ({f['note']})" if f.get("note") else "") for f in b["files"]]
    out += ["", f"Expected disruption at merge: {plan['disruption']['text']}"]
    r = plan["resync"]
    out += [f"Resync at commit and abort: {r.get('text') or r}"]
    out += _rollback(plan)
    side = plan.get("upgrade_side", {})
    if side.get("exists"):
        out += ["", f"Upgrade Side: {side['text']}"]
        out += [f"  {w['change']:<9} {w['path']}" for w in side["writes"]["outside"][:50]]
    return out
