"""The registry of managed volumes (store namespace ``volumes``, one document per volume).

A document records: name (from the path, stable), path, role, live-path mode (bind or
symlink), the two replica folders, adoption phase, duplex flag, the facts of the current
session (original and Upgrade Side replicas, split time and manifest) and the measured
resync throughput used for estimates. Which replica is live is read from the filesystem
(``livepath.current``), never trusted from the document: a crash between switching the
live path and recording it cannot mislead.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from activeupgrade.config.model import Config, VolumeRole, VolumeSpec
from activeupgrade.errors import AUError, VolumeError
from activeupgrade.platform.volumes import livepath, snapshot
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import plan
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.storage import Storage, detect
from activeupgrade.store.db import Store

NS = "volumes"
DEFAULT_BPS = 200e6
"""Bytes per second assumed before a resync was measured."""
DEFAULT_FPS = 2000.0
"""Entries handled (copied, compared, deleted) per second assumed before a resync was
measured."""
ATTACHED_PHASES = frozenset({"bound", "attached", "mirrored", "ready"})
"""Adoption phases from which the live path must show the intended replica."""


def name_for(path: str) -> str:
    """The volume name of ``path``: its components joined by '-' (``/opt/shop`` → opt-shop)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.strip("/")).strip("-.")
    return slug or "root"


@dataclass
class Volume:
    name: str
    path: str
    role: VolumeRole
    mode: str
    """bind (root: the live replica is bind-mounted on the path) or symlink."""
    folder: str
    """The replica folder: ``a``, ``b``, manifest and journal live here."""
    phase: str = "new"
    """Adoption phase: new, bound (bind mode) or copied, aside, attached (symlink mode),
    mirrored, ready, releasing."""
    duplex: bool = False
    """The last resync completed and no session holds the replicas."""
    session: dict[str, Any] = field(default_factory=dict)
    """Facts of the current session: id, original, upgrade, split_at, stale."""
    bps: float = DEFAULT_BPS
    """Copy rate (bytes per second) measured by the last resync that copied enough."""
    fps: float = DEFAULT_FPS
    """Entries handled per second measured by the last resync that handled enough."""
    base: float = 0.0
    """Seconds a resync of this volume takes with (almost) nothing to do: looking at the
    trees, the manifest (measured by the last such resync)."""
    last_resync: dict[str, Any] = field(default_factory=dict)
    intended: str = "a"
    """The replica the live path must show; recorded before every switch so that the live
    path can be attached again after a reboot (``reattach``)."""

    # -- replicas -------------------------------------------------------------------
    def replica(self, letter: str) -> str:
        return os.path.join(self.folder, letter)

    @property
    def replicas(self) -> dict[str, str]:
        return {"a": self.replica("a"), "b": self.replica("b")}

    def live(self) -> str | None:
        """The replica the live path shows now ("a", "b"), or None."""
        return livepath.current(self.path, self.replicas)

    def problem(self) -> str | None:
        """What is wrong with the live path (a mount removed behind the tool's back, a
        reboot not followed by ``reattach``), or None."""
        if self.phase not in ATTACHED_PHASES:
            return None
        if self.mode == livepath.BIND and not livepath.mounted(self.replica("a")):
            return (f"replica a of {self.name} is not bound to the original directory "
                    f"{self.path}")
        live = self.live()
        if live != self.intended:
            shown = f"replica {live}" if live else "neither replica"
            return f"the live path {self.path} shows {shown}, not replica {self.intended}"
        return None

    def live_or_fail(self) -> str:
        problem = self.problem()
        letter = self.live()
        if problem is not None or letter is None:
            raise VolumeError(
                problem or f"the live path {self.path} of volume {self.name} shows neither "
                "replica",
                hint=livepath.ATTACH_HINT.format(name=self.name)
                if self.phase in ATTACHED_PHASES else
                "Re-run `au volume adopt` for it (adoption resumes).",
            )
        return letter

    @staticmethod
    def other(letter: str) -> str:
        return "b" if letter == "a" else "a"

    @property
    def manifest(self) -> Manifest:
        return Manifest(Path(self.folder))

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    def storage(self) -> Storage:
        """The storage backend of the replicas (found on their filesystem)."""
        if not os.path.isdir(self.folder):
            return Storage.PLAIN
        if snapshot.is_subvolume(self.replica("b")):
            return Storage.SNAPSHOT
        return detect(self.folder)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["role"] = self.role.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Volume:
        d = dict(d)
        d["role"] = VolumeRole(d["role"])
        return cls(**d)

    def view(self) -> dict[str, Any]:
        """What ``au volume show`` prints."""
        live, problem = self.live(), self.problem()
        return {
            "name": self.name, "path": self.path, "role": self.role.value,
            "live_path": ("the original directory (replica a), replica b mounted on it "
                          "when b is live" if self.mode == livepath.BIND
                          else "symlink to the live replica"),
            "problem": problem,
            "mode": self.mode, "live": live, "replicas": self.replicas,
            "storage": self.storage().value,
            "phase": self.phase, "duplex": self.duplex and not self.session and problem is None,
            "session": self.session, "last_resync": self.last_resync,
        }


def get(store: Store, name: str) -> Volume | None:
    doc = store.get_doc(NS, name)
    return Volume.from_dict(doc) if doc else None


def require(store: Store, name_or_path: str) -> Volume:
    vol = get(store, name_or_path) or by_path(store, name_or_path)
    if vol is None:
        raise VolumeError(
            f"no managed volume named {name_or_path}",
            hint="See `au volume list`; adopt it with `au volume adopt PATH --role ROLE`.",
        )
    return vol


def save(store: Store, vol: Volume) -> None:
    store.put_doc(NS, vol.name, vol.to_dict())


def forget(store: Store, vol: Volume) -> None:
    store.delete_doc(NS, vol.name)


def all_volumes(store: Store) -> list[Volume]:
    return [Volume.from_dict(d) for _, d in sorted(store.docs(NS).items())]


def by_path(store: Store, path: str) -> Volume | None:
    norm = os.path.normpath(path)
    return next((v for v in all_volumes(store) if v.path == norm), None)


def for_config(store: Store, cfg: Config) -> list[Volume]:
    """The adopted volumes of ``cfg``'s selection, in its order; refuses unmanaged ones."""
    out = []
    for spec in cfg.volumes:
        vol = by_path(store, spec.path)
        if vol is None or not vol.ready:
            raise VolumeError(
                f"{spec.path} is not a managed volume"
                + (f" (adoption stopped at phase {vol.phase})" if vol else ""),
                hint=f"Run `au volume adopt {spec.path} --role {spec.role.value}`.",
            )
        if vol.role is not spec.role:
            vol.role = spec.role  # the configuration decides the role of this session
        out.append(vol)
    return out


def adopted_specs(store: Store) -> tuple[VolumeSpec, ...]:
    """Every adopted volume, as the volume selection of a session without a file."""
    return tuple(VolumeSpec(v.path, v.role) for v in all_volumes(store) if v.ready)


def merged(store: Store) -> bool:
    """True when a system volume's live path shows the current session's upgraded replica
    (an abort must then restart the applications)."""
    for v in all_volumes(store):
        if v.role is VolumeRole.SYSTEM and v.session.get("upgrade"):
            if v.live() == v.session["upgrade"]:
                return True
    return False


# -- pending resync -----------------------------------------------------------------
ZERO: dict[str, float] = {"bytes": 0, "files": 0, "seconds_estimate": 0.0}
"""The figures of a resync with nothing to do (never changed: copied where used)."""


def seconds_for(vol: Volume, nbytes: float, files: float) -> float:
    """How long a resync of ``nbytes`` in ``files`` entries takes on ``vol``, from what its
    last resyncs measured: the fixed cost of looking at the trees, plus the bytes at the
    copy rate, plus the entries at the per-entry rate."""
    if not nbytes and not files:
        return 0.0
    return round(vol.base + nbytes / vol.bps + files / vol.fps, 3)


def _estimate(vol: Volume, src: str, dst: str, state: SyncState) -> dict[str, float] | None:
    """Resync src → dst (replica letters) as planned now, without doing it; None when a
    resync of these replicas is running (its figures would be half-way)."""
    sp, dp = vol.replica(src), vol.replica(dst)
    if not os.path.isdir(sp) or not os.path.isdir(dp):
        return dict(ZERO)
    manifest = vol.manifest
    track = state.tracked(vol.folder)
    with state.holding(sp, dp, wait=False) as free:
        if not free:
            return None
        known, _ = state.load(manifest)
        s, d = state.trackers.take(sp, track), state.trackers.take(dp, track)
        only = state.narrowed(manifest, known, sp, dp, keep=True) if track else None
        p = plan(s.stats, d.stats, known, src == "a", only, None if only is None else s.multi)
    files = len(p.candidates) + len(p.deletions)
    return {"bytes": p.copy_bytes, "files": files,
            "seconds_estimate": seconds_for(vol, p.copy_bytes, files)}


def directions(vol: Volume, live: str) -> dict[str, tuple[str, str]]:
    """(source, target) replica letters of the resync each outcome needs."""
    standby = Volume.other(live)
    s = vol.session
    if vol.role is VolumeRole.SYSTEM and s.get("upgrade"):
        return {"commit": (s["upgrade"], s["original"]), "abort": (s["original"], s["upgrade"])}
    return {"commit": (live, standby), "abort": (live, standby)}


OUTCOMES = ("commit", "abort")


def _per_volume(vols: list[Volume], state: SyncState,
                before: dict[str, dict[str, dict[str, float]]]
                ) -> dict[str, dict[str, dict[str, float]]]:
    """Each ready volume's figures per outcome (``before``'s where a resync runs now)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for v in vols:
        live = v.live()
        if live is None or not v.ready:
            continue
        ways = directions(v, live)
        per: dict[str, dict[str, float]] = {}
        for outcome in OUTCOMES:
            src, dst = ways[outcome]
            est = _estimate(v, src, dst, state)
            if est is None:
                est = before.get(v.name, {}).get(outcome, dict(ZERO))
            per[outcome] = est
        out[v.name] = per
    return out


def _totals(per: dict[str, dict[str, dict[str, float]]], outcome: str,
            names: list[str]) -> dict[str, Any]:
    total = {"bytes": 0.0, "files": 0.0, "seconds_estimate": 0.0}
    for name in names:
        est = per.get(name, {}).get(outcome)
        for k in total:
            total[k] += est[k] if est else 0
    return {"bytes": int(total["bytes"]), "files": int(total["files"]),
            "seconds_estimate": round(total["seconds_estimate"], 2)}


def pending_resync(store: Store, cfg: Config | None = None,
                   state: SyncState | None = None) -> dict[str, Any]:
    """Size and estimated time of the resync a commit and an abort would need now, computed
    now (it looks at the trees: for plans and checks, never for the status bar)."""
    vols = all_volumes(store)
    if cfg is not None and cfg.volumes:
        paths = {s.path for s in cfg.volumes}
        vols = [v for v in vols if v.path in paths]
    per = _per_volume(vols, state if state is not None else SyncState.once(), {})
    return {outcome: {**_totals(per, outcome, list(per)),
                      "volumes": {name: est[outcome] for name, est in per.items()}}
            for outcome in OUTCOMES}


FACTS_TTL = 10.0
"""Seconds after which the status bar's pending-resync figures are computed again in the
background (with change tracking that looks only at what changed)."""


def _basis(vols: list[Volume]) -> str:
    """The registry as the figures depend on it (every resync, split, switch and adoption
    changes a document: the figures are then computed again)."""
    return json.dumps([v.to_dict() for v in vols], sort_keys=True, default=str)


def refresh_figures(store: Store, state: SyncState, basis: str = "") -> None:
    """Compute every volume's pending-resync figures into ``state.figures`` (run in the
    background by ``facts``; failures are kept in ``figures.error``, never raised)."""
    fig = state.figures
    try:
        vols = all_volumes(store)
        known = {os.path.realpath(p) for v in vols for p in v.replicas.values()}
        for root in state.trackers.roots():
            if not any(root == p or root.startswith(p + os.sep) for p in known):
                state.trackers.forget(root)  # a released volume's replica
        per = _per_volume(vols, state, fig.volumes)
        with state.lock:
            fig.volumes, fig.computed_at, fig.error = per, time.time(), ""
            fig.basis = basis or _basis(vols)
    except Exception as exc:  # a background job reports, it never raises
        with state.lock:
            fig.error = f"{type(exc).__name__}: {exc}"
            fig.computed_at = time.time()
    finally:
        with state.lock:
            fig.running = False


def facts(store: Store, state: SyncState | None = None) -> dict[str, Any]:
    """Duplex state and pending resync for the status bar.

    With the daemon's ``state``, never looks at a tree: the figures are the last ones
    computed in the background, and a new computation is started when they are out of
    date (``as_of`` says when they were computed; 0: not yet). Without one (a one-off
    caller), they are computed now."""
    vols = all_volumes(store)
    out: dict[str, Any] = {
        "duplex": all(v.ready and v.duplex and not v.session and v.problem() is None
                      for v in vols),
        "volumes": len(vols),
    }
    names = [v.name for v in vols]
    if state is None:
        per = _per_volume(vols, SyncState.once(), {})
        as_of, error = time.time(), ""
    else:
        fig = state.figures
        basis = _basis(vols)
        with state.lock:
            due = (fig.stale or fig.basis != basis
                   or time.time() - fig.computed_at > FACTS_TTL)
            start = due and not fig.running
            if start:
                fig.running, fig.stale = True, False
            per, as_of, error = dict(fig.volumes), fig.computed_at, fig.error
        if start:
            threading.Thread(target=refresh_figures, args=(store, state, basis),
                             name="au-pending-resync", daemon=True).start()
    pending = _totals(per, "commit", names)
    pending["as_of"] = round(as_of, 3)
    if error:
        pending["error"] = error
    out["pending_resync"] = pending
    out["pending_by_volume"] = {n: per[n] for n in names if n in per}
    return out


def invalidate_facts(state: SyncState | None = None) -> None:
    """The pending-resync figures of ``state`` are out of date (without a state there is
    nothing kept to invalidate: the figures also follow every change of the registry)."""
    if state is not None:
        state.invalidate()


def reattach(store: Store) -> tuple[list[str], list[str]]:
    """After a reboot (or a lost mount): attach every adopted volume's live path to the
    replica it must show. Returns what was done (one line per volume attached again) and
    what failed (one line per volume left as it was: the others are attached all the
    same, and whoever started this, the daemon most of all, goes on)."""
    done: list[str] = []
    failed: list[str] = []
    for vol in all_volumes(store):
        try:
            line = attach(vol)
        except (AUError, OSError) as exc:
            failed.append(f"{vol.path}: not attached: "
                          f"{exc.message if isinstance(exc, AUError) else exc}")
            continue
        if line is not None:
            done.append(line)
    if done:
        invalidate_facts()
    return done, failed


def attach(vol: Volume) -> str | None:
    """Make ``vol``'s live path show the replica it must show; what was done, or None when
    nothing was wrong. Writes made into the original directory while replica b should
    have been shown stay in replica a (the next resync from b replaces them)."""
    problem = vol.problem()
    if problem is None:
        return None
    livepath.show(vol.path, vol.replicas, vol.intended, vol.mode)
    invalidate_facts()
    return f"{vol.path}: attached again to replica {vol.intended} ({problem})"
