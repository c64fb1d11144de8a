"""Operations on a volume's replicas: resync one from the other (recording throughput),
verify them, switch the live path."""

from __future__ import annotations

import time
from collections.abc import Callable

from activeupgrade.errors import VolumeError
from activeupgrade.platform.volumes import livepath, registry
from activeupgrade.platform.volumes.registry import Volume
from activeupgrade.platform.volumes.resync import Progress, Result, Screen, resync
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.storage import Storage
from activeupgrade.platform.volumes.verify import trusted_by, verify, verify_settled
from activeupgrade.store.db import Store


def sync(
    store: Store,
    vol: Volume,
    src: str,
    dst: str,
    *,
    progress: Callable[[Progress], None] | None = None,
    check: Callable[[], None] | None = None,
    state: SyncState | None = None,
    screen: Screen | None = None,
) -> Result:
    """Resync replica ``dst`` from replica ``src`` ("a"/"b") and record the throughput.
    ``state``: the daemon's sync state (change tracking); None: the trees are read in
    full. ``screen``: see ``resync.resync``."""
    if src == dst:
        raise VolumeError(f"cannot resync replica {src} of {vol.name} from itself")
    res = resync(vol.replica(src), vol.replica(dst), vol.manifest, src_is_a=src == "a",
                 progress=progress, check=check, state=state, screen=screen)
    _record(store, vol, src, dst, res, state, measured=True)
    return res


def snapshot_made(store: Store, vol: Volume, src: str, dst: str, seconds: float,
                  state: SyncState | None = None) -> None:
    """Record replica ``dst`` made as a snapshot of ``src`` just now (``snapshot.mirror``)
    as the last resync: identical when it began, nothing read or copied (no rate to
    measure)."""
    _record(store, vol, src, dst, Result(storage=Storage.SNAPSHOT.value, seconds=seconds),
            state, measured=False)


def _record(store: Store, vol: Volume, src: str, dst: str, res: Result,
            state: SyncState | None, *, measured: bool) -> None:
    """``res`` as the volume's last resync (and its rates, where ``measured``), in the
    registry and in ``vol``; the pending-resync figures are stale."""
    fresh = registry.get(store, vol.name) or vol
    if measured:
        measure(fresh, res)
    fresh.last_resync = {"from": src, "to": dst, "at": time.time(), **res.to_dict()}
    registry.save(store, fresh)
    vol.bps, vol.fps, vol.base = fresh.bps, fresh.fps, fresh.base
    vol.last_resync = fresh.last_resync
    registry.invalidate_facts(state)


SMALL = 100
"""A resync handling fewer entries than this (and copying under 1 MiB) measures the fixed
cost of a resync of the volume; one handling more measures its rates."""


def measure(vol: Volume, res: Result) -> None:
    """Update ``vol``'s measured resync figures (``registry.seconds_for``) from ``res``."""
    handled = (res.copied_files + res.compared_files + res.metadata_fixed + res.deleted
               + res.linked + res.created_dirs)
    if handled < SMALL and res.copied_bytes < 1 << 20:
        vol.base = round(res.seconds, 3)
        return
    work = max(0.001, res.seconds - vol.base)
    if res.copied_bytes > 1 << 20:
        # the share of the time the bytes took: what the entries did not
        per_entry = handled / vol.fps
        vol.bps = max(1e6, res.copied_bytes / max(0.001, work - per_entry))
    if handled >= SMALL:
        copy_time = res.copied_bytes / vol.bps
        vol.fps = max(100.0, handled / max(0.001, work - copy_time))


def verify_volume(vol: Volume, *, full: bool = True, state: SyncState | None = None) -> int:
    """Compare the two replicas in content and metadata; raise VerifyMismatch. ``full``
    False: contents are read only where the resync manifest does not vouch for them (see
    verify.py); True: byte for byte."""
    trusted = None
    if not full:
        known, _ = (state or SyncState.once()).load(vol.manifest)
        trusted = trusted_by(known)
    return verify(vol.replica("a"), vol.replica("b"), name=vol.name, trusted=trusted)


def verify_in_use(vol: Volume, *, full: bool = True, state: SyncState | None = None
                  ) -> tuple[int, list[str]]:
    """``au volume verify``: what *duplex* means everywhere (the status, AU-C001 and here).

    The two replicas hold the same content except what the applications changed on the
    live replica since the last resync began: that lag is the pending resync, taken up by
    the next one, and is returned (not a failure). Any other difference — the standby
    written behind the tool's back, an entry neither side explains — raises
    VerifyMismatch. In a session (or before the first resync) the replicas are compared
    as they are."""
    live = vol.live()
    began = vol.last_resync.get("at")
    if vol.session or live is None or not isinstance(began, int | float):
        return verify_volume(vol, full=full, state=state), []
    since_ns = int((float(began) - float(vol.last_resync.get("seconds") or 0.0)) * 1e9)
    standby = Volume.other(live)
    trusted = None
    if not full:
        known, _ = (state or SyncState.once()).load(vol.manifest)
        trusted = trusted_by(known, first_is_a=live == "a")
    return verify_settled(vol.replica(live), vol.replica(standby), since_ns, name=vol.name,
                          trusted=trusted)


def switch(vol: Volume, to: str) -> bool:
    """Point the live path at replica ``to``; False when it already did (idempotent)."""
    if vol.live() == to:
        return False
    livepath.show(vol.path, vol.replicas, to, vol.mode)
    if vol.live() != to:
        raise VolumeError(f"switching {vol.path} to replica {to} did not take effect",
                          hint="Check the mounts of the path (`findmnt`).")
    return True
