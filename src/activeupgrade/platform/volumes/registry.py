"""The registry of managed volumes (store namespace ``volumes``, one document per volume).

A document records: name (from the path, stable), path, role, live-path mode (bind or
symlink), the two replica folders, adoption phase, duplex flag, the facts of the current
session (original and Upgrade Side replicas, split time and manifest) and the measured
resync throughput used for estimates. Which replica is live is read from the filesystem
(``livepath.current``), never trusted from the document: a crash between switching the
live path and recording it cannot mislead.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from activeupgrade.config.model import Config, VolumeRole, VolumeSpec
from activeupgrade.errors import VolumeError
from activeupgrade.platform.volumes import livepath, watch
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import plan
from activeupgrade.platform.volumes.tree import racy_window
from activeupgrade.store.db import Store

NS = "volumes"
DEFAULT_BPS = 200e6
"""Bytes per second assumed before a resync was measured."""
DEFAULT_FPS = 5000.0
"""Entries per second assumed before a resync was measured."""
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
    fps: float = DEFAULT_FPS
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
def _estimate(vol: Volume, src: str, dst: str) -> dict[str, float]:
    """Resync src → dst (replica letters) as planned now, without doing it."""
    if not os.path.isdir(vol.replica(src)) or not os.path.isdir(vol.replica(dst)):
        return {"bytes": 0, "files": 0, "seconds_estimate": 0.0}
    known, _ = vol.manifest.load()
    track = racy_window(vol.folder) == 0
    (s, ssig), (d, dsig) = (watch.snapshot(vol.replica(src), track),
                            watch.snapshot(vol.replica(dst), track))
    p = plan(s, d, known, src == "a", ssig, dsig)
    files = len(p.candidates) + len(p.deletions)
    return {"bytes": p.copy_bytes, "files": files,
            "seconds_estimate": round(p.copy_bytes / vol.bps + files / vol.fps, 2)}


def directions(vol: Volume, live: str) -> dict[str, tuple[str, str]]:
    """(source, target) replica letters of the resync each outcome needs."""
    standby = Volume.other(live)
    s = vol.session
    if vol.role is VolumeRole.SYSTEM and s.get("upgrade"):
        return {"commit": (s["upgrade"], s["original"]), "abort": (s["original"], s["upgrade"])}
    return {"commit": (live, standby), "abort": (live, standby)}


def pending_resync(store: Store, cfg: Config | None = None) -> dict[str, Any]:
    """Size and estimated time of the resync a commit and an abort would need now."""
    vols = all_volumes(store)
    if cfg is not None and cfg.volumes:
        paths = {s.path for s in cfg.volumes}
        vols = [v for v in vols if v.path in paths]
    out: dict[str, Any] = {}
    for outcome in ("commit", "abort"):
        total = {"bytes": 0.0, "files": 0.0, "seconds_estimate": 0.0}
        per: dict[str, Any] = {}
        for v in vols:
            live = v.live()
            if live is None or not v.ready:
                continue
            src, dst = directions(v, live)[outcome]
            est = _estimate(v, src, dst)
            per[v.name] = est
            for k in total:
                total[k] += est[k]
        out[outcome] = {"bytes": int(total["bytes"]), "files": int(total["files"]),
                        "seconds_estimate": round(total["seconds_estimate"], 2),
                        "volumes": per}
    return out


_cache: dict[str, tuple[float, dict[str, Any]]] = {}
FACTS_TTL = 10.0
"""Seconds the pending-resync figure of the status bar is reused (it scans the trees)."""


def facts(store: Store) -> dict[str, Any]:
    """Duplex state and pending resync for the status bar."""
    vols = all_volumes(store)
    key = str(store.path)
    hit = _cache.get(key)
    if hit is None or time.monotonic() - hit[0] > FACTS_TTL:
        try:
            pending = pending_resync(store)["commit"]
        except OSError:
            pending = {"bytes": 0, "files": 0, "seconds_estimate": 0.0}
        _cache[key] = (time.monotonic(), pending)
        hit = _cache[key]
    p = hit[1]
    return {
        "duplex": all(v.ready and v.duplex and not v.session and v.problem() is None
                      for v in vols),
        "volumes": len(vols),
        "pending_resync": {k: p[k] for k in ("bytes", "files", "seconds_estimate")},
    }


def invalidate_facts() -> None:
    _cache.clear()


def reattach(store: Store) -> list[str]:
    """After a reboot (or a lost mount): attach every adopted volume's live path to the
    replica it must show. Returns what was done, one line per volume attached again."""
    done = [line for vol in all_volumes(store) if (line := attach(vol)) is not None]
    if done:
        invalidate_facts()
    return done


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
