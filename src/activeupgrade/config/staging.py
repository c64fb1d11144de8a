"""Copies of a session's configuration files in the staging area (configuration part)."""

from __future__ import annotations

import shutil
from pathlib import Path

from activeupgrade.instance import Instance


def stage(instance: Instance, session: str, path: Path) -> Path:
    """Copy ``path`` (and its children) to the session's staging folder; return the copy."""
    folder = instance.staging / session
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    shutil.copy2(path, target)
    return target


def staged(instance: Instance, session: str, path: Path) -> Path:
    """The staged copy of ``path`` for ``session``."""
    return instance.staging / session / path.name


def forget(instance: Instance, session: str) -> None:
    shutil.rmtree(instance.staging / session, ignore_errors=True)
