"""Rollback-safe data (SPEC §12): a checkpoint of a data volume at merge, restorable by an
abort from Merge. Chosen per data volume (``checkpoint = true``).

The checkpoint is the volume's stale replica (its standby since the split), frozen at the
switch. Its facts live in the volume's session document (``session["checkpoint"]``):

- PrepareMerge (``volumes.checkpoint-presync``): the stale replica is brought up to date
  from the live one while Production serves (an incremental resync: the bulk of the work).
- ExecuteMerge, once the applications stopped (``volumes.checkpoint``): brought up to date
  once more (only what was written since the pre-sync), then frozen: ``phase`` ``frozen``,
  ``replica``, ``at``, ``storage``. On reflink storage its copies are clones (they share
  blocks with the live files: instant, no space until either side changes). Nothing
  writes the frozen replica until the session's resync at Commit or Abort.
- Merge: ``writes_since`` compares the live replica with the checkpoint: the files created,
  changed and deleted since, with their size (status, plan, ``au volume show``, consoles).
- Abort from Merge (restore: the default): ``volumes.checkpoint-save`` copies the files
  created or changed since into ``AU_HOME/saved-writes/<session>/<volume>/files`` and lists
  every write (deleted files too) in ``writes.json`` and ``writes.txt`` beside them, in a
  folder renamed into place once complete (phase ``saved``); ``volumes.checkpoint-restore``
  then makes the live path show the checkpoint replica (one mount move or symlink swap,
  whatever the size; phase ``restored``) and the abort's resync brings the other replica up
  to date from it. Nothing an application wrote is dropped: it is in the saved folder.
- Abort with ``keep_data`` (``au abort --keep-data``), or Commit: the checkpoint is
  released (phase ``released``); the live data stays, the replicas resync as always.

Every step is idempotent: each looks at the phase recorded and does only what is missing
(a crash while saving leaves a ``.partial`` folder that the rerun starts again).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activeupgrade.config.model import Config, VolumeRole
from activeupgrade.durable import fsync_dir, write_durably
from activeupgrade.engine.status import abort_options
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import VolumeError
from activeupgrade.instance import Instance
from activeupgrade.model.states import Request, Severity, UpgradeState
from activeupgrade.platform.volumes import registry, replica
from activeupgrade.platform.volumes.registry import Volume
from activeupgrade.platform.volumes.resync import Progress
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.steps import step
from activeupgrade.platform.volumes.tree import StatLike, join, listing
from activeupgrade.safecopy import Copied, copy_entry
from activeupgrade.store.db import Store
from activeupgrade.units import human_bytes

LISTED = 500
"""Paths of the writes since a checkpoint listed in full in the activity log."""
SHOWN = 50
"""Paths listed in the status, the plan and the consoles (all are in ``au volume show``
and, once saved, in the folder's ``writes.txt``)."""
SAVED = "saved-writes"
"""Store namespace: ``<session>:<volume>`` → the saved-aside folder and its counts."""


def saved_root(instance: Instance, session: str) -> Path:
    """The folder an abort from Merge saves the writes since the checkpoints into."""
    return instance.home / "saved-writes" / session


def hhmm(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


@dataclass
class Writes:
    """What was written to a volume's live replica since its checkpoint."""

    created: list[tuple[str, int]] = field(default_factory=list)
    changed: list[tuple[str, int]] = field(default_factory=list)
    deleted: list[tuple[str, int]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    """Folders created since (kept in the saved folder; not counted as files)."""

    @property
    def files(self) -> int:
        return len(self.created) + len(self.changed) + len(self.deleted)

    @property
    def bytes(self) -> int:
        return sum(n for _, n in self.created) + sum(n for _, n in self.changed)

    def lines(self) -> list[str]:
        out = [(rel, "created", n) for rel, n in self.created]
        out += [(rel, "changed", n) for rel, n in self.changed]
        out += [(rel, "deleted", n) for rel, n in self.deleted]
        return [f"{what:<8} {rel} ({human_bytes(n)})" for rel, what, n in sorted(out)]

    def summary(self) -> str:
        return (f"{self.files} file(s) written since: {len(self.created)} created, "
                f"{len(self.changed)} changed, {len(self.deleted)} deleted "
                f"({human_bytes(self.bytes)})")

    def to_dict(self, listed: int = SHOWN) -> dict[str, Any]:
        return {"files": self.files, "created": len(self.created),
                "changed": len(self.changed), "deleted": len(self.deleted),
                "bytes": self.bytes, "lines": self.lines()[:listed],
                "truncated": self.files > listed}


def _differs(live: str, ck: str, now: StatLike, then: StatLike) -> bool:
    if stat.S_IFMT(now.st_mode) != stat.S_IFMT(then.st_mode):
        return True
    if stat.S_ISLNK(now.st_mode):
        return os.readlink(live) != os.readlink(ck)
    if stat.S_ISREG(now.st_mode):
        # The checkpoint's copies carry the live files' modification times: a write moves
        # it (or the size) on the live side.
        return now.st_size != then.st_size or now.st_mtime_ns != then.st_mtime_ns
    return False


def writes_since(vol: Volume) -> Writes:
    """Compare the live replica of ``vol`` with its frozen checkpoint."""
    ck = vol.session.get("checkpoint") or {}
    live = vol.live()
    if live is None or not ck.get("replica") or live == ck["replica"]:
        return Writes()
    live_root, ck_root = vol.replica(live), vol.replica(str(ck["replica"]))
    now, then = listing(live_root), listing(ck_root)
    out = Writes()
    for rel, st in sorted(now.items()):
        if not rel:
            continue
        old = then.get(rel)
        if stat.S_ISDIR(st.st_mode):
            if old is None or not stat.S_ISDIR(old.st_mode):
                out.dirs.append(rel)
            continue
        if old is None or stat.S_ISDIR(old.st_mode):
            out.created.append((rel, st.st_size))
        elif _differs(join(live_root, rel), join(ck_root, rel), st, old):
            out.changed.append((rel, st.st_size))
    for rel, old in sorted(then.items()):
        if rel and not stat.S_ISDIR(old.st_mode):
            cur = now.get(rel)
            if cur is None or stat.S_ISDIR(cur.st_mode):
                out.deleted.append((rel, old.st_size))
    return out


# -- which volumes ----------------------------------------------------------------------
def _checkpointed(ctx: StepContext) -> list[Volume]:
    """This session's data volumes with ``checkpoint = true``."""
    wanted = {v.path for v in ctx.config.checkpointed}
    return [v for v in registry.for_config(ctx.store, ctx.config)
            if v.path in wanted and v.role is VolumeRole.DATA
            and v.session.get("id") == ctx.session]


def restoring(ctx: StepContext) -> bool:
    """An abort from Merge that returns checkpointed volumes to their checkpoint (the
    operator did not choose ``keep_data``)."""
    if ctx.request is not Request.ABORT or ctx.abort_from is not UpgradeState.MERGE:
        return False
    if abort_options(ctx.store, ctx.session).get("keep_data"):
        return False
    return any((v.session.get("checkpoint") or {}).get("phase") in ("frozen", "saved",
                                                                       "restored")
               for v in registry.all_volumes(ctx.store) if v.session.get("id") == ctx.session)


def _sync(ctx: StepContext, vol: Volume, why: str, state: SyncState | None) -> str:
    live = vol.live_or_fail()
    stale = Volume.other(live)

    def progress(p: Progress) -> None:
        ctx.progress(p.percent, f"{vol.name}: {why}: {p.text()}", **p.counts())

    res = replica.sync(ctx.store, vol, live, stale, progress=progress, check=ctx.check,
                       state=state)
    ctx.write("volume.checkpoint.sync",
              f"{vol.name}: replica {stale} brought up to date from {live} ({why}): "
              f"{res.copied_files} copied ({human_bytes(res.copied_bytes)}), {res.deleted} "
              f"deleted in {res.seconds:.2f}s" + (" (reflink clones)" if res.reflink else ""),
              details={"volume": vol.name, "from": live, "to": stale, **res.to_dict()})
    return stale


def _save_facts(ctx: StepContext, vol: Volume, ck: dict[str, Any]) -> None:
    fresh = registry.require(ctx.store, vol.name)
    fresh.session = {**fresh.session, "checkpoint": ck}
    registry.save(ctx.store, fresh)
    vol.session = fresh.session


# -- the steps --------------------------------------------------------------------------
def presync(ctx: StepContext, state: SyncState | None = None) -> None:
    """PrepareMerge: bring each checkpointed volume's stale replica up to date while
    Production serves, so that the checkpoint at the switch copies little."""
    for vol in _checkpointed(ctx):
        if vol.session.get("checkpoint"):
            continue  # already taken (a Retry)
        _sync(ctx, vol, "pre-sync of the checkpoint", state)


def take(ctx: StepContext, state: SyncState | None = None) -> None:
    """ExecuteMerge, applications stopped: bring the stale replica up to date once more and
    freeze it as the checkpoint."""
    for vol in _checkpointed(ctx):
        if vol.session.get("checkpoint"):
            continue
        t0 = time.monotonic()
        stale = _sync(ctx, vol, "checkpoint", state)
        at = time.time()
        storage = vol.storage()
        ck = {"phase": "frozen", "replica": stale, "at": at, "storage": storage.value}
        _save_facts(ctx, vol, ck)
        ctx.write("volume.checkpoint",
                  f"{vol.name}: checkpoint taken at {hhmm(at)} (replica {stale} frozen"
                  + (", reflink clones" if storage.clones else ", a full replica") + ")",
                  severity=Severity.NOTICE,
                  details={"volume": vol.name, **ck,
                           "seconds": round(time.monotonic() - t0, 4)})
        ctx.results.setdefault("checkpoints", {})[vol.name] = ck
    registry.invalidate_facts(state)


def _save_aside(ctx: StepContext, vol: Volume, ck: dict[str, Any]) -> dict[str, Any]:
    """Copy the writes since the checkpoint into a folder renamed into place when whole."""
    root = saved_root(ctx.instance, ctx.session)
    dest = root / vol.name
    if (dest / "writes.json").exists():
        return dict(json.loads((dest / "writes.json").read_text()))
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root.parent, 0o700)
    partial = root / f".{vol.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "files").mkdir(parents=True, mode=0o700)
    writes = writes_since(vol)
    for rel in writes.dirs:
        (partial / "files" / rel).mkdir(parents=True, exist_ok=True, mode=0o700)
    # Nothing followed out of the live data (an application may have made any entry a
    # link); a FIFO or device is listed, not copied.
    copied = Copied()
    top = os.open(vol.replica(vol.live_or_fail()),
                  os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for i, (rel, _) in enumerate([*writes.created, *writes.changed]):
            if i % 64 == 0:
                ctx.check()
            copy_entry(top, rel, rel, partial / "files", copied)
    finally:
        os.close(top)
    doc = {"volume": vol.name, "path": vol.path, "session": ctx.session,
           "checkpoint_at": ck["at"], "saved_at": time.time(), "folder": str(dest),
           **{k: [{"path": rel, "bytes": n} for rel, n in getattr(writes, k)]
              for k in ("created", "changed", "deleted")},
           "not_copied": copied.skipped, "files": writes.files, "bytes": writes.bytes}
    text = (f"Writes to {vol.path} after its checkpoint of {hhmm(ck['at'])}, saved aside by "
            f"the abort of session {ctx.session} (the volume returned to the checkpoint).\n"
            f"Created and changed files are under files/; deleted ones came back with the "
            f"checkpoint.\n{writes.summary()}\n\n" + "\n".join(writes.lines()) + "\n"
            + "".join(f"not copied: {why}\n" for why in copied.skipped))
    write_durably(partial / "writes.txt", text.encode())
    write_durably(partial / "writes.json", json.dumps(doc, indent=1).encode())
    os.rename(partial, dest)
    fsync_dir(root)
    return doc


def save(ctx: StepContext, state: SyncState | None = None) -> None:
    """Abort from Merge: save the writes made since each checkpoint aside (restore), or
    release the checkpoints (``keep_data``: the live data stays)."""
    if not restoring(ctx):
        release(ctx, state)
        return
    for vol in registry.all_volumes(ctx.store):
        ck = dict(vol.session.get("checkpoint") or {})
        if vol.session.get("id") != ctx.session or ck.get("phase") != "frozen":
            continue
        doc = _save_aside(ctx, vol, ck)
        entry = {"session": ctx.session, "volume": vol.name, "path": vol.path,
                 "folder": doc["folder"], "files": doc["files"], "bytes": doc["bytes"],
                 "checkpoint_at": ck["at"], "saved_at": doc["saved_at"]}
        ctx.store.put_doc(SAVED, f"{ctx.session}:{vol.name}", entry)
        _save_facts(ctx, vol, {**ck, "phase": "saved", "saved": doc["folder"],
                               "saved_files": doc["files"], "saved_bytes": doc["bytes"]})
        paths = [f"{k} {w['path']}" for k in ("created", "changed", "deleted")
                 for w in doc[k]]
        ctx.write("volume.checkpoint.saved",
                  f"{vol.name}: {doc['files']} file(s) written since the checkpoint of "
                  f"{hhmm(ck['at'])} ({human_bytes(doc['bytes'])}) saved in {doc['folder']}",
                  severity=Severity.WARNING if doc["files"] else Severity.NOTICE,
                  details={**entry, "paths": paths[:LISTED], "listed": min(len(paths), LISTED)})


def restore(ctx: StepContext, state: SyncState | None = None) -> None:
    """Abort from Merge, writes saved aside: the live path shows the checkpoint replica."""
    if not restoring(ctx):
        return
    for vol in registry.all_volumes(ctx.store):
        ck = dict(vol.session.get("checkpoint") or {})
        if vol.session.get("id") != ctx.session or ck.get("phase") not in ("saved",
                                                                            "restored"):
            continue
        if ck["phase"] == "saved" and not (Path(ck["saved"]) / "writes.json").exists():
            raise VolumeError(f"the writes since the checkpoint of {vol.name} are not in "
                              f"{ck['saved']}: the checkpoint is not restored",
                              hint="Retry: the writes are saved aside again first.")
        vol.intended = str(ck["replica"])
        registry.save(ctx.store, vol)
        replica.switch(vol, vol.intended)
        if ck["phase"] != "restored":
            _save_facts(ctx, vol, {**ck, "phase": "restored"})
        ctx.write("volume.checkpoint.restored",
                  f"{vol.path}: data returned to the checkpoint of {hhmm(ck['at'])} "
                  f"(replica {ck['replica']} is live); the writes since are in {ck['saved']}",
                  severity=Severity.NOTICE,
                  details={"volume": vol.name, "replica": ck["replica"], "saved": ck["saved"]})
    registry.invalidate_facts(state)


def release(ctx: StepContext, state: SyncState | None = None) -> None:
    """Commit (or an abort that keeps the data): the checkpoint is given up; the live data
    stays and the replicas resync as without one."""
    for vol in registry.all_volumes(ctx.store):
        ck = dict(vol.session.get("checkpoint") or {})
        if vol.session.get("id") != ctx.session or ck.get("phase") != "frozen":
            continue
        writes = writes_since(vol)
        _save_facts(ctx, vol, {**ck, "phase": "released", "released_at": time.time(),
                               "writes_kept": writes.files})
        ctx.write("volume.checkpoint.released",
                  f"{vol.name}: checkpoint of {hhmm(ck['at'])} released; the live data "
                  f"stays ({writes.summary()})",
                  details={"volume": vol.name, **writes.to_dict(LISTED)})
    registry.invalidate_facts(state)


# -- what the status shows --------------------------------------------------------------
def view(vol: Volume, listed: int = SHOWN) -> dict[str, Any] | None:
    """The checkpoint of ``vol`` and the writes since, ``listed`` paths of them (for ``au
    volume show`` and the status), or None."""
    ck = vol.session.get("checkpoint")
    if not ck:
        return None
    out: dict[str, Any] = {"volume": vol.name, "path": vol.path, **ck,
                           "time": hhmm(float(ck["at"]))}
    if ck.get("phase") == "frozen":
        try:
            out["writes"] = writes_since(vol).to_dict(listed)
        except OSError as exc:
            out["writes_error"] = str(exc)
    return out


def saved_folders(store: Store) -> list[dict[str, Any]]:
    """The saved-aside folders that still exist (the operator removes them when done)."""
    out = []
    for _, doc in sorted(store.docs(SAVED).items()):
        if isinstance(doc, dict) and os.path.isdir(str(doc.get("folder", ""))):
            out.append(doc)
    return out


CACHE_TTL = 3.0
"""Seconds the status reuses its comparison of the live data with the checkpoints before
it is made again, in the background."""


class Checkpoints:
    """What the status bar and the consoles show of checkpoints (owned by the platform).

    The comparison of the live data with a checkpoint reads both trees, so a status call
    never waits for it once it was made: after ``CACHE_TTL`` it is made again by a
    background thread while the status goes on showing the last one. Only the first look
    after a checkpoint changed (taken, frozen, released) is made at once."""

    def __init__(self, store: Store, instance: Instance) -> None:
        self.store = store
        self.instance = instance
        self._lock = threading.Lock()
        self._cached: tuple[float, str, dict[str, Any]] = (0.0, "", {})
        self._refreshing = False

    def facts(self) -> dict[str, Any]:
        """``checkpoints`` (each with the writes since), ``saved_writes`` (folders) and,
        while a checkpoint is frozen, the abort's ``costs`` wording."""
        vols = registry.all_volumes(self.store)
        saved = saved_folders(self.store)
        basis = json.dumps([[v.name, v.session.get("checkpoint")] for v in vols],
                           sort_keys=True, default=str) + str(len(self.store.docs(SAVED)))
        with self._lock:
            at, known, doc = self._cached
            if known == basis:
                if time.monotonic() - at >= CACHE_TTL and not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh, args=(vols, saved, basis),
                                     name="checkpoint-writes", daemon=True).start()
                return {**doc, "saved_writes": saved}
        return self._compute(vols, saved, basis)

    def _refresh(self, vols: list[Volume], saved: list[dict[str, Any]], basis: str) -> None:
        try:
            self._compute(vols, saved, basis, background=True)
        finally:
            with self._lock:
                self._refreshing = False

    def _compute(self, vols: list[Volume], saved: list[dict[str, Any]], basis: str, *,
                 background: bool = False) -> dict[str, Any]:
        views = [v for v in (view(vol) for vol in vols) if v]
        doc: dict[str, Any] = {"checkpoints": views, "saved_writes": saved}
        frozen = [v for v in views if v.get("phase") == "frozen"]
        if frozen:
            owner = next(vol for vol in vols if vol.name == frozen[0]["volume"])
            session = str(owner.session["id"])
            files = sum(int((v.get("writes") or {}).get("files", 0)) for v in frozen)
            when = ", ".join(sorted({v["time"] for v in frozen}))
            doc["costs"] = {"abort": (
                f"applications restart, data returns to the checkpoint of {when}; {files} "
                f"file(s) written since are kept in {saved_root(self.instance, session)}")}
        with self._lock:
            # A background comparison never replaces the look at a newer checkpoint.
            if not background or self._cached[1] == basis:
                self._cached = (time.monotonic(), basis, doc)
        return doc


# -- step builders ----------------------------------------------------------------------
def prepare_merge(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.checkpointed:
        return []
    return [step("volumes.checkpoint-presync", presync, state,
                 "pre-sync the data checkpoints (Production serves)")]


def execute_merge(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.checkpointed:
        return []
    return [step("volumes.checkpoint", take, state,
                 "take the data checkpoints (applications stopped)", 1800.0)]


def abort(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.checkpointed:
        return []
    return [step("volumes.checkpoint-save", save, state,
                 "save the writes since the checkpoints aside (or release them)"),
            step("volumes.checkpoint-restore", restore, state,
                 "return the data volumes to their checkpoints", 120.0)]


def commit(cfg: Config, state: SyncState | None = None) -> list[Step]:
    if not cfg.checkpointed:
        return []
    return [step("volumes.checkpoint-release", release, state,
                 "release the data checkpoints", 600.0)]
