"""The registry of managed volumes (filled in by the volumes part)."""

from __future__ import annotations

from activeupgrade.config.model import VolumeSpec
from activeupgrade.store.db import Store


def adopted_specs(store: Store) -> tuple[VolumeSpec, ...]:
    """Every adopted volume, as the volume selection of a session without a file."""
    return ()


def facts(store: Store) -> dict[str, object]:
    """Duplex state and pending resync for the status bar."""
    return {"duplex": True, "volumes": 0}
