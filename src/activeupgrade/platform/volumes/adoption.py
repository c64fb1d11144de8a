"""Adopting an existing directory as a managed volume, and releasing it again.

Adoption is a sequence of phases recorded in the registry; each is idempotent, so an
interrupted adoption resumes where it stopped and nothing is lost at any point:

1. ``copied``: the directory is copied into replica A (incremental on re-run);
2. ``aside``: the directory is renamed to ``.<name>.au-adopting`` beside it (atomic) and
   A is brought up to date with it again (writes made during the first copy);
3. ``attached``: the live path shows replica A (bind mount, or symlink when unprivileged);
4. ``mirrored``: replica B is copied from A;
5. ``ready``: the set-aside original is removed; the volume is duplex.

Release does the reverse: the live content is copied beside the path, the live path is
detached, the copy is renamed into place, the replicas are removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from activeupgrade.config.model import VolumeRole
from activeupgrade.errors import VolumeError
from activeupgrade.instance import Instance
from activeupgrade.platform.volumes import livepath, registry, replica, watch
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.registry import Volume
from activeupgrade.platform.volumes.resync import Progress, resync
from activeupgrade.store.db import Store

Report = Callable[[str], None]


def _aside(path: str) -> Path:
    p = Path(path)
    return p.with_name(f".{p.name}.au-adopting")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _validate(instance: Instance, store: Store, path: str, vol: Volume | None) -> None:
    if not os.path.isabs(path):
        raise VolumeError(f"{path} is not an absolute path", hint="Give the full path.")
    home = os.path.realpath(instance.home)
    if _overlaps(path, home):
        raise VolumeError(f"{path} overlaps the instance folder {home}",
                          hint="Volumes and AU_HOME must be separate trees.")
    for other in registry.all_volumes(store):
        if other.path != path and _overlaps(path, other.path):
            raise VolumeError(f"{path} overlaps the managed volume {other.path}",
                              hint="Volumes must not overlap (SPEC §1).")
    if vol is None and not os.path.isdir(path):
        raise VolumeError(f"{path} is not a directory", hint="Adopt an existing directory.")
    if vol is None and os.path.islink(path):
        raise VolumeError(f"{path} is a symlink", hint="Adopt the directory it points to.")


def adopt(
    instance: Instance,
    store: Store,
    path: str,
    role: VolumeRole,
    *,
    mode: str = "",
    progress: Callable[[Progress], None] | None = None,
    report: Report | None = None,
    check: Callable[[], None] | None = None,
) -> Volume:
    """Adopt ``path`` (or resume its adoption); returns the ready volume."""
    path = os.path.normpath(path)
    say = report or (lambda _m: None)
    vol = registry.by_path(store, path)
    _validate(instance, store, path, vol)
    if vol is None:
        name = registry.name_for(path)
        if registry.get(store, name) is not None:
            raise VolumeError(f"the volume name {name} is taken by another path",
                              hint="Rename one of the directories.")
        instance.ensure()
        folder = instance.replicas / name
        vol = Volume(name=name, path=path, role=role, mode=mode or livepath.default_mode(),
                     folder=str(folder))
        registry.save(store, vol)
    if vol.ready:
        say(f"{path} is already a managed volume ({vol.name})")
        return vol
    Path(vol.folder).mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Manifest(Path(vol.folder) / "adopt")
    staging.path.parent.mkdir(exist_ok=True)
    aside = _aside(path)

    def phase(name: str) -> None:
        vol.phase = name
        registry.save(store, vol)
        say(f"{vol.name}: {name}")

    if vol.phase == "new":
        resync(path, vol.replica("a"), staging, src_is_a=False, progress=progress,
               check=check)
        phase("copied")
    if vol.phase == "copied":
        if not aside.exists():
            os.rename(path, aside)
        resync(aside, vol.replica("a"), staging, src_is_a=False, progress=progress,
               check=check)
        phase("aside")
    if vol.phase == "aside":
        livepath.attach(path, vol.replica("a"), vol.mode)
        phase("attached")
    if vol.phase == "attached":
        replica.sync(store, vol, "a", "b", progress=progress, check=check)
        phase("mirrored")
    if vol.phase == "mirrored":
        if aside.exists():
            shutil.rmtree(aside)
        shutil.rmtree(staging.path.parent, ignore_errors=True)
        vol.duplex = True
        phase("ready")
    registry.invalidate_facts()
    return vol


def release(store: Store, vol: Volume, *, report: Report | None = None,
            progress: Callable[[Progress], None] | None = None,
            check: Callable[[], None] | None = None) -> None:
    """Give back a plain directory at the volume's path with the live content."""
    say = report or (lambda _m: None)
    if vol.session:
        raise VolumeError(f"{vol.name} is part of session {vol.session.get('id')}",
                          hint="Finish the session first.")
    p = Path(vol.path)
    tmp = p.with_name(f".{p.name}.au-release")
    staging = Manifest(Path(vol.folder) / "release")
    staging.path.parent.mkdir(exist_ok=True)
    if vol.phase != "releasing":
        live = vol.live_or_fail()
        resync(vol.replica(live), tmp, staging, src_is_a=True, progress=progress,
               check=check)
        vol.phase = "releasing"
        registry.save(store, vol)
        say(f"{vol.name}: live content copied to {tmp}")
    if tmp.exists():
        livepath.detach(p, vol.mode)
        if p.is_dir() and not p.is_symlink():
            p.rmdir()  # the empty mount point (bind mode)
        os.rename(tmp, p)
    for path in vol.replicas.values():
        watch.forget(path)
    shutil.rmtree(vol.folder, ignore_errors=True)
    registry.forget(store, vol)
    registry.invalidate_facts()
    say(f"{vol.path} is a plain directory again")
