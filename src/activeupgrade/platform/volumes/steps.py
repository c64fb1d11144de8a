"""Volume steps of the requests (SPEC §3). Every step is idempotent: it reads where the
replicas and live paths are now and does only what is still missing."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from activeupgrade.config.model import Config, VolumeRole
from activeupgrade.durable import write_durably
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import VerifyMismatch
from activeupgrade.model.states import Severity
from activeupgrade.platform.volumes import registry, replica, watch
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.registry import Volume
from activeupgrade.platform.volumes.resync import Progress
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.tree import (
    RACY_NS,
    SIG,
    SIG_LEN,
    Sig,
    join,
    listing,
    rec_mode,
    same_content,
)
from activeupgrade.platform.volumes.verify import trusted_by, verify_settled
from activeupgrade.units import human_bytes

LISTED = 500
"""Changed paths listed in full in the activity log, per volume."""


def _sync(ctx: StepContext, vol: Volume, src: str, dst: str, why: str,
          state: SyncState | None) -> None:
    def progress(p: Progress) -> None:
        ctx.progress(p.percent, f"{vol.name}: {p.text()}", **p.counts())

    res = replica.sync(ctx.store, vol, src, dst, progress=progress, check=ctx.check,
                       state=state)
    ctx.write(
        "volume.resync.done",
        f"{vol.name}: replica {dst} resynchronised from {src} ({why}): "
        f"{res.copied_files} copied ({human_bytes(res.copied_bytes)}), {res.deleted} deleted, "
        f"{res.metadata_fixed} metadata fixed, {res.scanned} entries in {res.seconds:.2f}s",
        details={"volume": vol.name, "from": src, "to": dst, **res.to_dict()},
    )
    ctx.results.setdefault("resync", {})[vol.name] = {
        "from": src, "to": dst, "copied_bytes": res.copied_bytes, "seconds": round(res.seconds, 3),
    }


def _snapshot_path(vol: Volume) -> Path:
    return Path(vol.folder) / "split.json"


def _baseline(vol: Volume) -> Manifest:
    """The manifest as it was at the split (its files linked, the journal copied)."""
    return Manifest(Path(vol.folder) / "split")


SPLIT_FORMAT = 2


def _snapshot(vol: Volume, live: str, state: SyncState) -> int:
    """Record what the live tree held at the split, to tell later what Production changed.

    PrepareSplit's resync left the replicas identical and the manifest holds the live
    side's signatures: the manifest (its files kept aside) is the record of the split.
    Only the entries it does not vouch for are looked at: compared with the standby
    replica, those found identical are recorded with their signatures, the others as
    differing. With change tracking those entries are the few changed since the last
    resync, and the live tracker's mark is kept: the report then looks only at the names
    changed since. Returns how many entries differ already (Production changes since
    PrepareSplit: reported at PrepareMerge)."""
    manifest = vol.manifest
    entries, _ = state.load(manifest)
    side = 0 if live == "a" else 1
    live_root, standby_root = vol.replica(live), vol.replica(Volume.other(live))
    track = state.tracked(vol.folder)
    with state.holding(live_root, standby_root):
        snap = state.trackers.take(live_root, track)
        state.trackers.take(standby_root, track)
        only = (state.narrowed(manifest, entries, live_root, standby_root, keep=True)
                if track else None)
    now = snap.stats
    n = SIG_LEN
    extra: dict[str, list[int]] = {}
    differing: list[str] = []
    names = (rel for rel, _ in now.recs()) if only is None else iter(sorted(only))
    for rel in names:
        rec = now.rec(rel)
        if rec is None or stat.S_ISDIR(rec_mode(rec)):
            continue
        known = entries.get(rel)
        if known is not None and known[side * n:side * n + n] == rec[:n]:
            continue  # vouched for by the manifest
        st = now[rel]
        lp, sp = join(live_root, rel), join(standby_root, rel)
        try:
            other = os.lstat(sp)
        except FileNotFoundError:
            differing.append(rel)
            continue
        if stat.S_ISREG(st.st_mode) and stat.S_ISREG(other.st_mode):
            same = other.st_size == st.st_size and same_content(lp, sp)
        elif stat.S_ISLNK(st.st_mode) and stat.S_ISLNK(other.st_mode):
            same = os.readlink(lp) == os.readlink(sp)
        else:
            same = stat.S_IFMT(st.st_mode) == stat.S_IFMT(other.st_mode)
        if same:
            extra[rel] = list(SIG.unpack(rec[:n]))
        else:
            differing.append(rel)
    base = _baseline(vol)
    shutil.rmtree(base.path.parent, ignore_errors=True)
    base.path.parent.mkdir()
    if manifest.path.exists():
        os.link(manifest.path, base.path)  # replaced by rename, never written in place
    if manifest.journal_path.exists():
        shutil.copyfile(manifest.journal_path, base.journal_path)
    doc = {"format": SPLIT_FORMAT, "side": side, "key": [list(k) for k in manifest.key()],
           "epoch": state.epoch if snap.mark is not None else None,
           "mark": [snap.mark.tracker, snap.mark.gen] if snap.mark is not None else None,
           "extra": extra, "differing": differing}
    write_durably(_snapshot_path(vol), json.dumps(doc, separators=(",", ":")).encode())
    return len(differing)


def _production_changed(vol: Volume, doc: dict[str, Any], state: SyncState
                        ) -> tuple[list[str], bool]:
    """The files Production changed since the split (``doc``: what ``_snapshot``
    recorded), and whether only the names changed since were looked at (False: change
    tracking was lost since, after a restart of the daemon, say: the tree was read)."""
    live_root = vol.replica(vol.session["original"])
    upgraded = vol.replica(vol.session["upgrade"])
    side, n = int(doc["side"]), SIG_LEN
    manifest = vol.manifest
    key = [list(k) for k in manifest.key()]
    base = manifest if key == doc["key"] else _baseline(vol)
    entries, _ = state.load(base) if base is manifest else base.load()
    extra: dict[str, bytes] = {rel: SIG.pack(*v) for rel, v in doc["extra"].items()}
    differing = set(doc["differing"])

    def expected(rel: str) -> Sig | None:
        if rel in extra:
            return extra[rel]
        if rel in differing:
            return None
        known = entries.get(rel)
        return None if known is None else known[side * n:side * n + n]

    names: set[str] | None = None
    mark = doc.get("mark")
    track = state.tracked(vol.folder)
    changed: set[str] = set()
    with state.holding(live_root):
        if track and mark is not None and doc.get("epoch") == state.epoch:
            now = state.trackers.take(live_root, track).stats
            names = state.trackers.changed_since(live_root, watch.Mark(mark[0], mark[1]))
        else:
            now = listing(live_root)
        changed.update(rel for rel in differing if rel in now)  # differing at the split
        if names is None:
            present: Iterable[tuple[str, bytes]] = now.recs()
            gone: Iterable[str] = (rel for rel in (*entries, *extra) if rel not in now)
        else:
            present = ((rel, rec) for rel in names if (rec := now.rec(rel)) is not None)
            gone = (rel for rel in names if rel not in now)
        for rel, rec in present:
            if not stat.S_ISDIR(rec_mode(rec)) and expected(rel) != rec[:n]:
                changed.add(rel)
        for rel in gone:
            # a file deleted on Production but still in the upgraded replica: back at
            # commit
            was = expected(rel)
            if (was is not None and not stat.S_ISDIR(SIG.unpack(was)[4])
                    and os.path.lexists(join(upgraded, rel))):
                changed.add(rel)
    return sorted(changed), names is not None


def sync_standby(ctx: StepContext, state: SyncState | None = None) -> None:
    """PrepareSplit: bring each standby replica up to date with the live one."""
    for vol in registry.for_config(ctx.store, ctx.config):
        live = vol.live_or_fail()
        if vol.session.get("id") == ctx.session:
            continue  # already split in this session (a retry after ExecuteSplit began)
        _sync(ctx, vol, live, Volume.other(live), "prepare split", state)


def split(ctx: StepContext, state: SyncState | None = None) -> None:
    """ExecuteSplit: the standby of each system volume becomes the Upgrade Side's."""
    for vol in registry.for_config(ctx.store, ctx.config):
        if vol.session.get("id") == ctx.session:
            continue
        live = vol.live_or_fail()
        standby = Volume.other(live)
        facts: dict[str, Any] = {"id": ctx.session, "original": live, "split_at": time.time()}
        if vol.role is VolumeRole.SYSTEM:
            # PrepareSplit left the replicas identical and its manifest holds the live
            # side's signatures: kept as they are, they tell what Production changes later.
            facts["differing_at_split"] = _snapshot(
                vol, live, state if state is not None else SyncState.once())
            facts["upgrade"] = standby
        else:
            facts["stale"] = standby  # data: Production-only, its standby now lags
        vol.session, vol.duplex = facts, False
        registry.save(ctx.store, vol)
        ctx.write("volume.split",
                  f"{vol.name} ({vol.role.value}): live replica {live}"
                  + (f", Upgrade Side replica {standby}" if "upgrade" in facts
                     else ", Production-only"),
                  details={"volume": vol.name, **facts})
    registry.invalidate_facts(state)


def production_changes(ctx: StepContext, state: SyncState | None = None) -> None:
    """PrepareMerge and ExecuteMerge: list files changed on Production's system volumes
    since the split. Run again on every Retry and once more at ExecuteMerge once the
    applications run upgraded: the original replicas are no longer written then (the live
    paths show the upgraded ones), so the last report covers every change up to the
    switch, and reading them costs the applications no time."""
    counts: dict[str, int] = {}
    for vol in registry.for_config(ctx.store, ctx.config):
        if vol.role is not VolumeRole.SYSTEM or not vol.session.get("upgrade"):
            continue
        try:
            doc = json.loads(_snapshot_path(vol).read_text())
        except FileNotFoundError:
            continue
        if not isinstance(doc, dict) or doc.get("format") != SPLIT_FORMAT:
            changed, tracked = _changed_from_snapshot(vol, doc), False
        else:
            changed, tracked = _production_changed(
                vol, doc, state if state is not None else SyncState.once())
        if not tracked:
            ctx.write("volume.production-changes.read",
                      f"{vol.name}: change tracking since the split was lost (the daemon "
                      "restarted, or the tracking overflowed): the whole tree was compared",
                      severity=Severity.INFO, details={"volume": vol.name})
        counts[vol.name] = len(changed)
        ctx.write(
            "volume.production-changes",
            f"{vol.name}: {len(changed)} file(s) changed on the Production Side since split"
            + (" (lost at commit unless backed up)" if changed else ""),
            severity=Severity.WARNING if changed else Severity.INFO,
            details={"volume": vol.name, "paths": changed[:LISTED], "count": len(changed)},
        )
    ctx.results["production_changes"] = counts


def _changed_from_snapshot(vol: Volume, before: dict[str, list[int]]) -> list[str]:
    """The report from a split snapshot of every entry's signature (format 1: a split
    made before the tool was updated)."""
    now = listing(vol.replica(vol.session["original"]))
    upgraded = vol.replica(vol.session["upgrade"])
    return sorted(
        {rel for rel, rec in now.recs()
         if not stat.S_ISDIR(rec_mode(rec)) and before.get(rel) != list(SIG.unpack(rec[:SIG_LEN]))}
        | {rel for rel in before if rel not in now and os.path.lexists(join(upgraded, rel))})


def switch(ctx: StepContext, state: SyncState | None = None) -> None:
    """ExecuteMerge: the live paths of system volumes show the upgraded replicas."""
    for vol in registry.for_config(ctx.store, ctx.config):
        up = vol.session.get("upgrade")
        if vol.role is VolumeRole.SYSTEM and up:
            t0 = time.monotonic()
            vol.intended = up
            registry.save(ctx.store, vol)
            if replica.switch(vol, up):
                ctx.write("volume.switch", f"{vol.path} now shows the upgraded replica {up}",
                          details={"volume": vol.name, "replica": up,
                                   "seconds": round(time.monotonic() - t0, 4)})
    registry.invalidate_facts(state)


def switch_back(ctx: StepContext, state: SyncState | None = None) -> None:
    """Abort: a system volume showing the upgraded replica goes back to the original."""
    for vol in registry.for_config(ctx.store, ctx.config):
        orig = vol.session.get("original")
        if vol.role is VolumeRole.SYSTEM and orig and vol.session.get("upgrade"):
            vol.intended = orig
            registry.save(ctx.store, vol)
            if replica.switch(vol, orig):
                ctx.write("volume.switch-back", f"{vol.path} shows the original replica {orig}",
                          details={"volume": vol.name, "replica": orig})
    registry.invalidate_facts(state)


def _resync_after(ctx: StepContext, outcome: str, state: SyncState | None) -> None:
    for vol in registry.for_config(ctx.store, ctx.config):
        live = vol.live_or_fail()
        src, dst = registry.directions(vol, live)[outcome]
        if outcome == "commit" and vol.role is VolumeRole.SYSTEM and vol.session.get("upgrade"):
            src = live  # whatever is live now is what the operator committed
            dst = Volume.other(live)
        _sync(ctx, vol, src, dst, outcome, state)


def commit_resync(ctx: StepContext, state: SyncState | None = None) -> None:
    """Commit: old system replicas ← upgraded ones; stale data standbys ← live."""
    _resync_after(ctx, "commit", state)


def abort_resync_run(ctx: StepContext, state: SyncState | None = None) -> None:
    """Abort: Upgrade Side replicas ← originals; stale data standbys ← live."""
    _resync_after(ctx, "abort", state)


SETTLE_ROUNDS = 3
"""Finish resyncs and verifies up to this many times while applications write."""


def verify_duplex(ctx: StepContext, state: SyncState | None = None) -> None:
    """Finish: standbys up to date and identical to the live replicas; session cleared."""
    for vol in registry.for_config(ctx.store, ctx.config):
        live = vol.live_or_fail()
        for attempt in range(1, SETTLE_ROUNDS + 1):
            # A write's timestamp may lag the real clock by one tick (coarse or multigrain
            # timestamps): the margin keeps a write made just after the resync began from
            # looking older than it.
            since = time.time_ns() - RACY_NS
            _sync(ctx, vol, live, Volume.other(live), "finish", state)
            # the applications keep writing to the live replica: what they changed since
            # the resync began is the lag the next resync takes up, not a failure
            try:
                # quick: contents the manifest vouches for are not read again
                known, _ = (state or SyncState.once()).load(vol.manifest)
                checked, lagging = verify_settled(
                    vol.replica(live), vol.replica(Volume.other(live)), since, name=vol.name,
                    trusted=trusted_by(known, live == "a"))
                break
            except VerifyMismatch as exc:
                if attempt == SETTLE_ROUNDS:
                    raise
                ctx.write("volume.verify.again", f"{vol.name}: {exc.message}; resync again "
                          f"(round {attempt + 1} of {SETTLE_ROUNDS})", severity=Severity.NOTICE)
        vol.session, vol.duplex = {}, True
        registry.save(ctx.store, vol)
        _snapshot_path(vol).unlink(missing_ok=True)
        shutil.rmtree(_baseline(vol).path.parent, ignore_errors=True)
        ctx.write("volume.duplex",
                  f"{vol.name}: duplex ({checked} entries verified"
                  + (f"; {len(lagging)} changed by the applications since the resync "
                     "began, taken up by the next resync" if lagging else "") + ")",
                  details={"volume": vol.name, "entries": checked, "lagging": lagging[:50]})
    registry.invalidate_facts(state)


StepFn = Callable[[StepContext, SyncState | None], None]


def step(name: str, fn: StepFn, state: SyncState | None, description: str,
         timeout: float = 3600.0, *, rerun: bool = False) -> Step:
    """A step that runs ``fn`` with the daemon's sync state ``state`` (volume steps and
    the data checkpoints' steps)."""
    def run(ctx: StepContext) -> None:
        fn(ctx, state)

    run.__doc__ = fn.__doc__
    return Step(name=name, run=run, timeout=timeout, description=description, rerun=rerun)


def _production_changes(state: SyncState | None, description: str) -> Step:
    return step("volumes.production-changes", production_changes, state, description, 600,
                rerun=True)


def prepare_split(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.volumes:
        return []
    return [step("volumes.sync-standby", sync_standby, state,
                 "bring standby replicas up to date")]


def execute_split(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.volumes:
        return []
    return [step("volumes.split", split, state,
                 "give the Upgrade Side its system replicas")]


def prepare_merge(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.volumes:
        return []
    return [_production_changes(state, "list files changed on Production since split")]


def report_production_changes(cfg: Config, state: SyncState | None = None) -> list[Step]:
    """ExecuteMerge, once the applications run upgraded: the final report."""
    if not cfg.volumes:
        return []
    return [_production_changes(state, "list files changed on the original replicas up to "
                                "the switch")]


def execute_merge(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.volumes:
        return []
    return [step("volumes.switch", switch, state,
                 "switch system volumes to the upgraded replicas", 60)]


def commit(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.volumes:
        return []
    return [step("volumes.resync-commit", commit_resync, state,
                 "resync old replicas from upgraded")]


def abort_switch_back(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.volumes:
        return []
    return [step("volumes.switch-back", switch_back, state,
                 "switch back to the original replicas", 60)]


def abort_resync(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.volumes:
        return []
    return [step("volumes.resync-abort", abort_resync_run, state,
                 "resync upgraded replicas")]


def finish(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.volumes:
        return []
    return [step("volumes.verify-duplex", verify_duplex, state,
                 "verify duplex, clear the session")]
