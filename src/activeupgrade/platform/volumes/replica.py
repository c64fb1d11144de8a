"""Operations on a volume's replicas: resync one from the other (recording throughput),
verify them, switch the live path."""

from __future__ import annotations

import time
from collections.abc import Callable

from activeupgrade.errors import VolumeError
from activeupgrade.platform.volumes import livepath, registry
from activeupgrade.platform.volumes.registry import Volume
from activeupgrade.platform.volumes.resync import Progress, Result, resync
from activeupgrade.platform.volumes.verify import verify
from activeupgrade.store.db import Store


def sync(
    store: Store,
    vol: Volume,
    src: str,
    dst: str,
    *,
    progress: Callable[[Progress], None] | None = None,
    check: Callable[[], None] | None = None,
) -> Result:
    """Resync replica ``dst`` from replica ``src`` ("a"/"b") and record the throughput."""
    if src == dst:
        raise VolumeError(f"cannot resync replica {src} of {vol.name} from itself")
    res = resync(vol.replica(src), vol.replica(dst), vol.manifest, src_is_a=src == "a",
                 progress=progress, check=check)
    fresh = registry.get(store, vol.name) or vol
    if res.seconds > 0.05 and res.copied_bytes > 1 << 20:
        fresh.bps = max(1e6, res.copied_bytes / res.seconds)
    if res.seconds > 0.05 and res.scanned > 1000:
        fresh.fps = max(100.0, res.scanned / res.seconds)
    fresh.last_resync = {"from": src, "to": dst, "at": time.time(), **res.to_dict()}
    registry.save(store, fresh)
    vol.bps, vol.fps, vol.last_resync = fresh.bps, fresh.fps, fresh.last_resync
    registry.invalidate_facts()
    return res


def verify_volume(vol: Volume) -> int:
    """Compare the two replicas in content and metadata; raise VerifyMismatch."""
    return verify(vol.replica("a"), vol.replica("b"), name=vol.name)


def switch(vol: Volume, to: str) -> bool:
    """Point the live path at replica ``to``; False when it already did (idempotent)."""
    if vol.live() == to:
        return False
    livepath.show(vol.path, vol.replicas, to, vol.mode)
    if vol.live() != to:
        raise VolumeError(f"switching {vol.path} to replica {to} did not take effect",
                          hint="Check the mounts of the path (`findmnt`).")
    return True
