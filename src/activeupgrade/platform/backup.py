"""Backup at merge (SPEC §7): selected files of the old Production system replicas.

At ExecuteMerge, after the live paths were switched to the upgraded replicas, the files
and globs of ``backup.paths`` (absolute paths on system volumes: logs, the analogue of the
original's Event Viewer logs) are copied from the *old* Production replicas into
``<backups>/<timestamp>-<session>/<original absolute path>``, a folder kept after the
session. The activity log lists what was saved, and what changed on the Production Side's
system volumes during split but was not saved (it is lost at commit).
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

from activeupgrade import safecopy, safepath
from activeupgrade.config.model import Config, VolumeRole
from activeupgrade.engine.journal import Journal
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import VolumeError
from activeupgrade.model.states import Request, Severity
from activeupgrade.platform.volumes import registry
from activeupgrade.safecopy import Copied
from activeupgrade.store.db import Store

NAMESPACE = "backup"
"""Store namespace: the backup folder of each session (key: session id)."""
LISTED = 200
"""Most file names written in one log entry (the rest are counted)."""


def copy_matches(old_dir: Path, live: str, patterns: list[str], dest: Path) -> Copied:
    """Copy what ``patterns`` (absolute, under ``live``) match in ``old_dir`` to ``dest``.

    Nothing is followed out of the replica: each match is opened from the replica's folder
    with ``O_NOFOLLOW`` on every component (``safepath.open_beneath``). A symbolic link is
    saved as the link itself, a matched folder saves what it holds the same way, a match
    below a linked folder is skipped, and special files (FIFOs, devices, sockets) are
    skipped. Saved files keep their mode, owner and times; the backup folder is root's.
    """
    out = Copied()
    top = os.open(old_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for pattern in patterns:
            rel_pattern = os.path.relpath(pattern, live)
            for match in sorted(glob.glob(glob.escape(str(old_dir)) + "/" + rel_pattern,
                                          recursive=True)):
                rel = os.path.relpath(match, old_dir)
                if rel == ".":  # the whole volume
                    for entry in sorted(os.listdir(top)):
                        safecopy.copy_at(top, entry, str(Path(live) / entry), dest, out)
                elif not rel.startswith("../"):
                    safecopy.copy_entry(top, rel, str(Path(live) / rel), dest, out)
    finally:
        os.close(top)
    out.saved = sorted(set(out.saved))
    out.skipped = sorted(set(out.skipped))
    return out


def backup_folder(base: Path, name: str) -> Path:
    """Create the session's backup folder ``base/name`` (0700), refusing a ``base`` on an
    untrusted path: whoever could write a folder above it could read or redirect the
    copies (``safepath``)."""
    existing = base
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    safepath.check_trusted(existing)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    safepath.check_trusted(base)
    dest = base / name
    dest.mkdir(mode=0o700, exist_ok=True)
    os.chmod(dest, 0o700)
    return dest


def changed_since(old_dir: Path, live: str, since: float) -> list[str]:
    """Files of ``old_dir`` modified at or after ``since``, as live paths."""
    found: list[str] = []
    for root, _, names in os.walk(old_dir):
        for name in names:
            p = Path(root) / name
            try:
                if p.lstat().st_mtime >= since:
                    found.append(str(Path(live) / p.relative_to(old_dir)))
            except OSError:
                continue
    return sorted(found)


def split_time(store: Store, session: str) -> float:
    """When ExecuteSplit began in ``session`` (0 if it never ran)."""
    marks = [m.at for m in Journal(store).marks(session)
             if m.request == Request.EXECUTE_SPLIT.value]
    return min(marks) if marks else 0.0


def replica_dirs(store: Store, path: str) -> tuple[Path, Path]:
    """(old Production replica, upgraded replica) folders of the system volume at ``path``."""
    vol = registry.by_path(store, path)
    if vol is None or not vol.session.get("upgrade") or not vol.session.get("original"):
        raise VolumeError(
            f"{path} has no split replicas in this session: nothing to back up from",
            hint="The volume must be managed and split (see `au volume list`).",
        )
    return Path(vol.replica(vol.session["original"])), Path(vol.replica(vol.session["upgrade"]))


def _run(ctx: StepContext, cfg: Config) -> None:
    doc = ctx.store.get_doc(NAMESPACE, ctx.session)
    if not isinstance(doc, dict):
        base = Path(cfg.backup.folder) if cfg.backup.folder else ctx.instance.backups
        doc = {"dir": str(base / f"{time.strftime('%Y%m%d-%H%M%S')}-{ctx.session}")}
        ctx.store.put_doc(NAMESPACE, ctx.session, doc)  # a rerun reuses the same folder
    dest = backup_folder(Path(doc["dir"]).parent, Path(doc["dir"]).name)
    since = split_time(ctx.store, ctx.session)
    saved: list[str] = []
    skipped: list[str] = []
    unsaved: list[str] = []
    claimed: set[str] = set()
    for vol in cfg.volumes:
        if vol.role is not VolumeRole.SYSTEM:
            continue
        mine = [p for p in cfg.backup.paths
                if p == vol.path or p.startswith(vol.path.rstrip("/") + "/")]
        claimed.update(mine)
        old_dir, _ = replica_dirs(ctx.store, vol.path)
        copied = copy_matches(old_dir, vol.path, mine, dest)
        got = copied.saved
        saved += got
        skipped += copied.skipped
        if since:
            unsaved += [p for p in changed_since(old_dir, vol.path, since) if p not in got]
    for p in cfg.backup.paths:
        if p not in claimed:
            ctx.write("backup.outside", f"{p} is not on a system volume: not saved",
                      severity=Severity.WARNING, details={"path": p})
    ctx.write("backup.saved", f"saved {len(saved)} file(s) from the old Production replicas "
              f"into {dest}", severity=Severity.NOTICE,
              details={"folder": str(dest), "files": saved[:LISTED], "count": len(saved)})
    if skipped:
        ctx.write("backup.skipped", f"{len(skipped)} match(es) not saved: nothing is "
                  "followed out of a replica", severity=Severity.WARNING,
                  details={"files": skipped[:LISTED], "count": len(skipped)})
    if unsaved:
        ctx.write("backup.unsaved",
                  f"{len(unsaved)} file(s) changed on the Production Side's system volumes "
                  "during split and were not saved (lost at commit)",
                  severity=Severity.WARNING,
                  details={"files": unsaved[:LISTED], "count": len(unsaved)})
    ctx.results.update(folder=str(dest), saved=len(saved), unsaved=len(unsaved))


def save(cfg: Config) -> list[Step]:
    if not cfg.backup.paths:
        return []
    return [Step("backup.save", lambda ctx: _run(ctx, cfg), timeout=1800.0,
                 description="back up selected files from the old Production replicas")]
