"""Copying entries out of a tree someone else can write, without following them anywhere.

The backup (old system replicas at merge) and a checkpoint's saved-aside writes (a live
data volume) copy files as root out of folders that applications, maybe other users, can
change. Each entry is opened from the tree's own folder with ``O_NOFOLLOW`` on every
component (``safepath.open_beneath``): a symbolic link is saved as the link itself, an entry
below a linked folder is skipped, a folder saves what it holds the same way, and special
files (FIFOs, devices, sockets) are skipped — each skip said. Copies keep their mode, owner
and times, and their folders are made 0700 (they may be secrets). A fault of the
destination's filesystem (full, read-only) is raised; what cannot be read is skipped.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from activeupgrade import safepath
from activeupgrade.durable import replacing, write_all
from activeupgrade.errors import os_error

MAX_DEPTH = 200
"""Deepest folder below an entry that is copied (deeper ones are skipped and said)."""


@dataclass
class Copied:
    """What one backup copy saved, and what it would not follow."""

    saved: list[str] = field(default_factory=list)
    """Live paths saved (files, and symbolic links as links)."""
    skipped: list[str] = field(default_factory=list)
    """Live paths not saved, with why (a folder on the way is a link, not a file …)."""


def copy_entry(top: int, rel: str, live_path: str, dest: Path, out: Copied) -> None:
    """Save ``rel`` (below the folder ``top``, every component opened without following a
    link) at ``dest / live_path``."""
    parent, _, name = rel.rpartition("/")
    try:
        dir_fd = safepath.open_beneath(top, parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        out.skipped.append(f"{live_path} (a folder on its path is a symbolic link)")
        return
    try:
        copy_at(dir_fd, name, live_path, dest, out)
    finally:
        os.close(dir_fd)


def copy_at(dir_fd: int, name: str, live_path: str, dest: Path, out: Copied,
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
        found = os_error(exc, f"save {live_path} into {dest}")
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
                copy_at(sub, entry, f"{live_path}/{entry}", dest, out, depth + 1)
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
