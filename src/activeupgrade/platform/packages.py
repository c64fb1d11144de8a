"""Packages staged on the Production Side for the Upgrade Side (which has no network)."""

from __future__ import annotations

from pathlib import Path

from activeupgrade.instance import Instance


def stage_folder(instance: Instance) -> Path:
    """``AU_HOME/packages``: ``archives/`` (the .deb files) and ``lists/`` (apt's lists)."""
    return instance.home / "packages"
