"""Copies of a session's configuration files in the staging area (SPEC §8).

When a session starts, its top file and every child it includes are copied, under their
own names, to ``AU_HOME/staging/<session>/``. Children live in their parent's folder, so
the staged copy loads exactly as the original did; later edits of the originals do not
affect the running session. Each copy is written durably (temp file, fsync, rename, fsync
of the folder) and staging again is harmless (idempotent).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from activeupgrade.config.nesting import read_tree
from activeupgrade.durable import write_durably
from activeupgrade.errors import ConfigError
from activeupgrade.instance import Instance


def stage(instance: Instance, session: str, path: Path) -> Path:
    """Copy ``path`` and its children to the session's staging folder; return the copy."""
    files = read_tree(path)  # refuses a broken configuration before anything is copied
    folder = instance.staging / session
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for settings in files:
            write_durably(folder / settings.path.name, settings.path.read_bytes())
    except OSError as exc:
        raise ConfigError(
            f"cannot copy the configuration {path} to the staging area {folder}: "
            f"{exc.strerror or exc}",
            hint="Check free space and permissions of the instance folder.",
        ) from None
    return folder / files[0].path.name


def staged(instance: Instance, session: str, path: Path) -> Path:
    """The staged copy of ``path`` for ``session``."""
    return instance.staging / session / path.name


def restore(instance: Instance, session: str, files: dict[str, str]) -> None:
    """Write a session's staged files again (from the store's copy) when they went
    missing from the staging area."""
    folder = instance.staging / session
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, text in files.items():
            write_durably(folder / Path(name).name, text.encode())
    except OSError as exc:
        raise ConfigError(
            f"cannot write the staged configuration of session {session} to {folder}: "
            f"{exc.strerror or exc}",
            hint="Check free space and permissions of the instance folder.",
        ) from None


def forget(instance: Instance, session: str) -> None:
    """Remove the staged copies of a finished session."""
    shutil.rmtree(instance.staging / session, ignore_errors=True)
