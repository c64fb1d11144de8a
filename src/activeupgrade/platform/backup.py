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
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from activeupgrade import safepath
from activeupgrade.config.model import Config, VolumeRole
from activeupgrade.durable import replacing, write_all
from activeupgrade.engine.journal import Journal
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import VolumeError, os_error
from activeupgrade.model.states import Request, Severity
from activeupgrade.platform.volumes import registry
from activeupgrade.store.db import Store

NAMESPACE = "backup"
"""Store namespace: the backup folder of each session (key: session id)."""
LISTED = 200
"""Most file names written in one log entry (the rest are counted)."""
MAX_DEPTH = 200
"""Deepest folder below a match that is saved (deeper ones are skipped and said)."""


@dataclass
class Copied:
    """What one backup copy saved, and what it would not follow."""

    saved: list[str] = field(default_factory=list)
    """Live paths saved (files, and symbolic links as links)."""
    skipped: list[str] = field(default_factory=list)
    """Live paths not saved, with why (a folder on the way is a link, not a file …)."""


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
                        _copy_at(top, entry, str(Path(live) / entry), dest, out)
                elif not rel.startswith("../"):
                    _copy_entry(top, rel, live, dest, out)
    finally:
        os.close(top)
    out.saved = sorted(set(out.saved))
    out.skipped = sorted(set(out.skipped))
    return out


def _copy_entry(top: int, rel: str, live: str, dest: Path, out: Copied) -> None:
    live_path = str(Path(live) / rel)
    parent, _, name = rel.rpartition("/")
    try:
        dir_fd = safepath.open_beneath(top, parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        out.skipped.append(f"{live_path} (a folder on its path is a symbolic link)")
        return
    try:
        _copy_at(dir_fd, name, live_path, dest, out)
    finally:
        os.close(dir_fd)


def _copy_at(dir_fd: int, name: str, live_path: str, dest: Path, out: Copied,
             depth: int = 0) -> None:
    """Save entry ``name`` of the folder ``dir_fd``. What cannot be read is skipped and
    said (it vanished, its path is too long, a tree deeper than ``MAX_DEPTH``); a fault of
    the backup's own filesystem (full, read-only) fails the step."""
    if depth > MAX_DEPTH:
        out.skipped.append(f"{live_path} (deeper than {MAX_DEPTH} folders)")
        return
    try:
        _copy_entry_at(dir_fd, name, live_path, dest, out, depth)
    except OSError as exc:
        found = os_error(exc, f"save {live_path} into the backup folder {dest}")
        if found is not None:
            raise found from None
        out.skipped.append(f"{live_path} ({exc.strerror or exc})")


def _copy_entry_at(dir_fd: int, name: str, live_path: str, dest: Path, out: Copied,
                   depth: int) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    target = dest / live_path.lstrip("/")
    if stat.S_ISLNK(st.st_mode):
        _make_parents(target.parent, dest)
        if target.is_symlink() or target.exists():
            target.unlink()
        os.symlink(os.readlink(name, dir_fd=dir_fd), target)
        os.lchown(target, st.st_uid, st.st_gid)
        out.saved.append(live_path)
    elif stat.S_ISREG(st.st_mode):
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                      dir_fd=dir_fd)
        try:
            _make_parents(target.parent, dest)
            _copy_fd(src, target)
        finally:
            os.close(src)
        out.saved.append(live_path)
    elif stat.S_ISDIR(st.st_mode):
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                      dir_fd=dir_fd)
        try:
            for entry in sorted(os.listdir(sub)):
                _copy_at(sub, entry, f"{live_path}/{entry}", dest, out, depth + 1)
        finally:
            os.close(sub)
    else:
        out.skipped.append(f"{live_path} (not a regular file)")


def _make_parents(folder: Path, dest: Path) -> None:
    """Folders of the backup below ``dest`` (created 0700: the copies may be secrets)."""
    missing = []
    for p in (folder, *folder.parents):
        if p == dest or p.is_dir():
            break
        missing.append(p)
    for p in reversed(missing):
        p.mkdir(mode=0o700)


def _copy_fd(src: int, target: Path) -> None:
    st = os.fstat(src)
    with replacing(target, "au-backup") as fd:
        while chunk := os.read(src, 1 << 20):
            write_all(fd, chunk)
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


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
