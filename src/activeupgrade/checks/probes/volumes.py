"""Volume checks: duplex, existence, management, overlap, filesystem, free space."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from activeupgrade.checks.catalogue import CheckSeverity
from activeupgrade.checks.probe import CheckEnv, Verdict
from activeupgrade.config.merge import overlaps
from activeupgrade.platform.volumes import registry, snapshot
from activeupgrade.units import human_bytes

MARGIN = 0.05
"""Share of the duplexed volumes' size kept free for resync temporaries."""


def _selected(env: CheckEnv) -> list[str]:
    return [v.path for v in env.config.volumes]


def _none_selected(warn: bool = False) -> Verdict:
    """No volume at all: a session would upgrade nothing. Said once (as a warning, by
    AU-C002); the other volume checks have nothing to look at."""
    if warn:
        return Verdict(False, "no volume is selected (the configuration has no [[volume]] and "
                       "no volume is adopted): the session would upgrade nothing",
                       severity=CheckSeverity.WARNING)
    return Verdict(True, "no volume selected: nothing to check")


def duplex(env: CheckEnv) -> Verdict:
    # With the daemon's sync state the pending figures are the background ones (never a
    # walk of the trees: a split must not wait on it); duplex itself is the registry's.
    facts = registry.facts(env.store, env.sync)
    problems = [(v.name, p) for v in registry.all_volumes(env.store)
                if (p := v.problem()) is not None]
    if problems:
        return Verdict(False, "not in duplex mode: " + "; ".join(
            f"{p}: run `au volume attach {name}`" for name, p in problems),
            details={"facts": facts, "live_paths": dict(problems)})
    pending = facts.get("pending_resync")
    if facts.get("duplex"):
        lag = ""
        if isinstance(pending, dict) and (pending.get("bytes") or pending.get("files")):
            lag = (f" ({pending.get('files', 0)} files, "
                   f"{human_bytes(float(pending.get('bytes') or 0))} changed on the live "
                   "replicas since the last resync: pending, taken up by the next resync)")
        return Verdict(True, "every volume is in duplex mode" + lag, details={"facts": facts})
    text = ""
    if isinstance(pending, dict) and pending.get("bytes"):
        text = (f": resync pending ({human_bytes(float(pending['bytes']))}, "
                f"{pending.get('files', 0)} files)")
    return Verdict(False, "not in duplex mode" + text, details={"facts": facts})


def exist(env: CheckEnv) -> Verdict:
    paths = _selected(env)
    if not paths:
        return _none_selected(warn=True)
    missing = [p for p in paths if not os.path.isdir(p)]
    if missing:
        return Verdict(False, "missing or not a folder: " + ", ".join(missing),
                       details={"missing": missing})
    return Verdict(True, f"{len(paths)} volume(s) exist")


def managed(env: CheckEnv) -> Verdict:
    paths = _selected(env)
    if not paths:
        return _none_selected()
    adopted = {v.path for v in registry.adopted_specs(env.store)}
    missing = [p for p in paths if p not in adopted]
    if missing:
        return Verdict(False, "not adopted (no replica): " + ", ".join(missing),
                       details={"not_adopted": missing})
    return Verdict(True, f"{len(paths)} volume(s) are managed")


def no_overlap(env: CheckEnv) -> Verdict:
    paths = _selected(env)
    clashes = [f"{a} and {b}" for i, a in enumerate(paths) for b in paths[:i] if overlaps(a, b)]
    if clashes:
        return Verdict(False, "overlapping volumes: " + "; ".join(clashes))
    return Verdict(True, "no volume lies inside another")


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (where it would be created)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def replica_dirs(env: CheckEnv, volume: str) -> list[Path]:
    """Where the replicas of ``volume`` live (the registry knows; else the replicas folder
    where adoption will put them)."""
    lookup = getattr(registry, "by_path", None)
    vol = lookup(env.store, volume) if lookup is not None else None
    replicas = getattr(vol, "replicas", None)
    if isinstance(replicas, dict) and replicas:
        return [Path(p) for p in replicas.values()]
    return [env.instance.replicas]


def same_filesystem(env: CheckEnv) -> Verdict:
    paths = _selected(env)
    if not paths:
        return _none_selected()
    apart = []
    for path in paths:
        # The live path itself may be a mount of (or a link to) its replica: what matters
        # is the filesystem it is switched on, i.e. its parent folder's.
        home = str(_existing(Path(path).parent))
        for rep in replica_dirs(env, path):
            if not snapshot.same_filesystem(home, str(_existing(rep))):
                apart.append(f"{path} (replica {rep})")
    if apart:
        return Verdict(False, "on another filesystem than their replicas: " + ", ".join(apart))
    return Verdict(True, f"{len(paths)} volume(s) share a filesystem with their replicas")


def tree_size(root: str) -> int:
    """Bytes a copy of ``root`` occupies (allocated blocks; hard links counted once)."""
    total, seen = 0, set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return total



def _tracked_size(env: CheckEnv, path: str) -> int | None:
    """The bytes of an adopted volume's live replica from the daemon's change tracking
    (its kept entries summed: no walk of the tree once it is tracked); None without it."""
    vol = registry.by_path(env.store, path)
    live = None if vol is None or env.sync is None else vol.live()
    if vol is None or env.sync is None or live is None or not env.sync.tracked(vol.folder):
        return None
    root = vol.replica(live)
    with env.sync.holding(root, wait=False) as free:
        if not free:
            return None  # a resync holds it: walk instead of waiting
        return env.sync.trackers.take(root).stats.regular_bytes()


def free_space(env: CheckEnv) -> Verdict:
    paths = [p for p in _selected(env) if os.path.isdir(p)]
    if not paths:
        return Verdict(True, "no existing volume to copy")
    adopted = {v.path for v in registry.adopted_specs(env.store)}
    need = 0
    for path in paths:
        known = _tracked_size(env, path) if path in adopted else None
        size = tree_size(path) if known is None else known
        # A duplexed volume already has its copy; a resync only needs temporaries.
        need += int(size * MARGIN) if path in adopted else size
    where = _existing(replica_dirs(env, paths[0])[0])
    free = shutil.disk_usage(where).free
    details = {"needed_bytes": need, "free_bytes": free, "filesystem_of": str(where)}
    if free < need:
        return Verdict(False, f"{human_bytes(free)} free under {where}, {human_bytes(need)} needed",
                       details=details)
    return Verdict(True, f"{human_bytes(free)} free under {where}, {human_bytes(need)} needed",
                   details=details)
