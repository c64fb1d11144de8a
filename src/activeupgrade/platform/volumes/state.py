"""What the volumes code keeps between calls, as one object its owner passes explicitly.

The daemon owns one ``SyncState`` (``session/host.py`` creates it with the platform) and
hands it to every resync, estimate and split it runs; nothing in the volumes code keeps
state at module level. It holds:

- the change trackers of the replica trees (``watch.Trackers``);
- the racy window measured per filesystem (``tree.racy_window``);
- the manifest entries of the last load or resync, by manifest (decoding a large manifest
  is most of a resync with little to do);
- what the last completed resync of each manifest leaves for the next (``Last``: marks of
  both trees, so the next resync compares only the names changed since);
- the pending-resync figures the status bar shows (``pending.Figures``), computed in the
  background, never while a status request waits;
- the pause of the cyclic garbage collector shared by concurrent resyncs.

A caller without a state (a one-off resync in a test or tool) gets ``SyncState.once()``:
no change tracking, nothing kept.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from activeupgrade.platform.volumes import watch
from activeupgrade.platform.volumes.manifest import Entries, Manifest
from activeupgrade.platform.volumes.tree import racy_window


@dataclass
class Last:
    """What the last completed resync of a manifest leaves for the next one. Afterwards
    every name of the two trees is either identical on both with the signatures the
    manifest holds, or in ``unsure``; with both trees tracked since, only names changed
    on either side since its marks, plus ``unsure``, can differ from the manifest, in
    either direction (the manifest's pairs are oriented A, B)."""

    marks: dict[str, watch.Mark]
    """Tree → its mark: the source's scan, the target's look after the writes."""
    entries: Entries
    """The manifest entries it left (the next load must return this very object)."""
    unsure: set[str]


@dataclass
class Figures:
    """The pending-resync figures of every volume, as last computed in the background."""

    volumes: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """Volume name → outcome (commit, abort) → bytes, files, seconds_estimate."""
    computed_at: float = 0.0
    """When they were computed (seconds since the epoch; 0: not yet)."""
    basis: str = ""
    """The registry documents they were computed from (a change makes them stale)."""
    stale: bool = True
    """Something changed since (a resync, a split, a switch): compute them again."""
    running: bool = False
    """A computation is under way."""
    error: str = ""
    """Why the last computation failed ("" when it did not)."""


class GcPause:
    """Pauses the cyclic garbage collector (process-wide) while resyncs run. A resync
    creates a few objects per entry (stats, signatures, pairs), none in cycles; with tens
    of thousands of entries alive, the collector's full passes over them took a tenth of
    a full sync's CPU. Reference counting still frees everything; nested and concurrent
    resyncs share one pause."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._was_enabled:
                    gc.enable()


class SyncState:
    """Per-daemon sync state of the volumes (see the module docstring)."""

    def __init__(self, *, track: bool = True) -> None:
        self.track = track
        """False: never track changes (every look at a tree reads all of it)."""
        self.epoch = f"{os.getpid()}.{time.time_ns()}"
        """This state's identity: a tracker mark recorded on disk is only meaningful to
        the state that made it (after a restart of the daemon the trackers are new)."""
        self.trackers = watch.Trackers()
        self.windows: dict[int, int] = {}
        """Device → racy window (ns) measured there."""
        self.lock = threading.Lock()
        self._memo: dict[str, tuple[tuple[tuple[int, ...], ...], Entries]] = {}
        self._last: dict[str, Last] = {}
        self._held: dict[str, threading.Lock] = {}
        self.figures = Figures()
        self.gc = GcPause()
        self.others: dict[str, tuple[object, list[tuple[str, str]]]] = {}
        """The Upgrade Side's look at other instances (``side.view.other_data_paths``):
        instance folder → the signature of its state database when read, and its data
        volumes (name, path) then."""

    @classmethod
    def once(cls) -> SyncState:
        """A state for one call: no tracking, nothing kept afterwards."""
        return cls(track=False)

    def close(self) -> None:
        self.trackers.close()

    # -- filesystems ------------------------------------------------------------------
    def racy_window(self, folder: str | os.PathLike[str]) -> int:
        """``tree.racy_window`` of ``folder``'s filesystem, measured once per device."""
        return racy_window(folder, self.windows)

    def tracked(self, folder: str | os.PathLike[str]) -> bool:
        """Whether trees on ``folder``'s filesystem are change-tracked here (fine-grained
        timestamps are needed: see watch.py)."""
        return self.track and self.racy_window(folder) == 0

    # -- manifests --------------------------------------------------------------------
    def load(self, manifest: Manifest) -> tuple[Entries, int]:
        """``manifest.load()``, from memory when the files have not changed since this
        state last read or wrote them. The result is shared: only a resync changes it (in
        place, holding both trees; after a failed one the files are read again)."""
        settled = manifest.settle_snapshot()
        key = manifest.key()
        if settled is not None:
            entries, resumed = settled, 0
        else:
            with self.lock:
                hit = self._memo.get(str(manifest.path))
            if hit is not None and hit[0] == key:
                return hit[1], 0
            entries, resumed = manifest.load()
        if self.track:
            with self.lock:
                self._memo[str(manifest.path)] = (key, entries)
        return entries, resumed

    def remember(self, manifest: Manifest, entries: Entries) -> None:
        """Keep ``entries`` (what the files now say) for the next ``load``."""
        if self.track:
            with self.lock:
                self._memo[str(manifest.path)] = (manifest.key(), entries)

    def forget(self, manifest: Manifest) -> None:
        """Read ``manifest``'s files at the next load; no narrowing from the last resync."""
        with self.lock:
            self._memo.pop(str(manifest.path), None)
            self._last.pop(str(manifest.path), None)

    def leave(self, manifest: Manifest, last: Last) -> None:
        if self.track:
            with self.lock:
                self._last[str(manifest.path)] = last

    def last(self, manifest: Manifest, *, keep: bool = False) -> Last | None:
        """What the last resync of ``manifest`` left (taken away unless ``keep``)."""
        with self.lock:
            if keep:
                return self._last.get(str(manifest.path))
            return self._last.pop(str(manifest.path), None)

    def narrowed(self, manifest: Manifest, known: Entries, src: str, dst: str, *,
                 keep: bool = False) -> set[str] | None:
        """The names of ``src`` and ``dst`` that may differ from ``known`` (the manifest's
        entries) since the last resync of the pair, or None: all of them. Call it right
        after looking at both trees."""
        last = self.last(manifest, keep=keep)
        if last is None or last.entries is not known or set(last.marks) != {src, dst}:
            return None
        out = set(last.unsure)
        for root, mark in last.marks.items():
            changed = self.trackers.changed_since(root, mark)
            if changed is None:
                return None
            out |= changed
        return out

    # -- exclusive use of trees -------------------------------------------------------
    @contextmanager
    def holding(self, *roots: str, wait: bool = True) -> Iterator[bool]:
        """Use of ``roots`` by one resync or estimate at a time (in path order, so two
        holders never wait on each other). With ``wait`` False, yields False at once when
        another holds one of them."""
        with self.lock:
            locks = [self._held.setdefault(r, threading.Lock()) for r in sorted(set(roots))]
        got: list[threading.Lock] = []
        try:
            for lk in locks:
                if not lk.acquire(blocking=wait):
                    break
                got.append(lk)
            yield len(got) == len(locks)
        finally:
            for lk in reversed(got):
                lk.release()

    def invalidate(self) -> None:
        """The pending-resync figures are out of date (a resync, split or switch ran)."""
        with self.lock:
            self.figures.stale = True
