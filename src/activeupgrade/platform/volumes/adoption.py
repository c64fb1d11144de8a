"""Adopting an existing directory as a managed volume, and releasing it again.

Adoption is a sequence of phases recorded in the registry; each is idempotent, so an
interrupted adoption resumes where it stopped and nothing is lost at any point.

As root (``bind`` mode) the directory never moves and never disappears:

1. ``bound``: replica A becomes a private bind of the original directory (the live path
   is untouched: it shows A already);
2. ``mirrored``: replica B is copied from A (one copy, by ``cp`` processes and the
   kernel's ``copy_file_range``/reflink, see ``resync``), or, where the directory is a
   btrfs subvolume, made as a snapshot of it (``snapshot``: no file read or written);
3. ``ready``: the volume is duplex.

Unprivileged (``symlink`` mode) the directory is copied into replica A, renamed aside and
replaced by a symlink to A; B is copied from A; the set-aside original is removed (phases
``copied``, ``aside``, ``attached``, ``mirrored``, ``ready``).

Refused before anything is done: the root, ``/proc``, ``/sys``, ``/dev`` and ``/run``,
mount points, paths through symlinks, paths overlapping a volume or the instance folder,
and trees holding an immutable or append-only file (a resync could never change it).

Release does the reverse: in bind mode A is brought up to date with the live replica, the
live path shows the original directory again and the replicas are removed; in symlink
mode the live content is copied beside the path and renamed into place.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from activeupgrade.config.model import VolumeRole
from activeupgrade.errors import VolumeError
from activeupgrade.instance import Instance
from activeupgrade.libc import LIBC
from activeupgrade.platform.volumes import (
    livepath,
    mounts,
    registry,
    replica,
    snapshot,
    watch,
)
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.registry import Volume
from activeupgrade.platform.volumes.resync import Progress, resync
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.tree import (
    ATTRIBUTES,
    DIR_FLAGS,
    IMMUTABLE,
    STATX_BUFFER,
    STATX_FLAGS,
    UNCHANGEABLE,
)
from activeupgrade.store.db import Store

Report = Callable[[str], None]

KERNEL_TREES = ("/proc", "/sys", "/dev", "/run")
"""Trees the kernel or early boot makes (not software or data to upgrade)."""



def _aside(path: str) -> Path:
    p = Path(path)
    return p.with_name(f".{p.name}.au-adopting")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _validate(instance: Instance, store: Store, path: str, vol: Volume | None) -> None:
    if not os.path.isabs(path):
        raise VolumeError(f"{path} is not an absolute path", hint="Give the full path.")
    if path == "/":
        raise VolumeError("the root directory cannot be a volume",
                          hint="Adopt the trees to upgrade: /usr, /etc, /var/lib/dpkg, ...")
    for tree in KERNEL_TREES:
        if _overlaps(path, tree):
            raise VolumeError(f"{path} is in {tree}, which the kernel or the boot makes",
                              hint="Adopt folders that hold software or data.")
    home = os.path.realpath(instance.home)
    if _overlaps(path, home):
        raise VolumeError(f"{path} overlaps the instance folder {home}",
                          hint="Volumes and AU_HOME must be separate trees.")
    for other in registry.all_volumes(store):
        if other.path != path and _overlaps(path, other.path):
            raise VolumeError(f"{path} overlaps the managed volume {other.path}",
                              hint="Volumes must not overlap (SPEC §1): release it first, "
                                   "or adopt a tree beside it.")
    if vol is not None:
        return
    if os.path.islink(path):
        raise VolumeError(f"{path} is a symlink", hint="Adopt the directory it points to.")
    if not os.path.isdir(path):
        raise VolumeError(f"{path} is not a directory", hint="Adopt an existing directory.")
    real = os.path.realpath(path)
    if real != path:
        raise VolumeError(f"{path} passes through a symlink (it is {real})",
                          hint=f"Adopt {real}.")
    if livepath.mounted(path):
        kind = next((m.fstype for m in mounts.table() if m.point == path), "?")
        raise VolumeError(f"{path} is a mount point ({kind})",
                          hint="A volume is a folder of a mounted filesystem, not the mount "
                               "itself: adopt the folders inside it.")


def refuse_unchangeable(root: str, shown_as: str) -> int:
    """Raise VolumeError naming the first immutable or append-only entry of the tree at
    ``root`` (``chattr +i``/``+a``: no resync could ever change it), as a path below
    ``shown_as``; returns the entries looked at. One ``statx`` per entry, relative to its
    directory's descriptor, into one buffer (the walk of every adoption)."""
    statx, buf = LIBC.statx, ctypes.create_string_buffer(STATX_BUFFER)
    attributes, fsencode = ATTRIBUTES.unpack_from, os.fsencode
    seen, stack = 0, [root]
    while stack:
        folder = stack.pop()
        try:
            fd = os.open(folder, DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone since its parent was listed (the tree is in use)
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    seen += 1
                    if statx(fd, fsencode(entry.name), STATX_FLAGS, 0, buf) != 0:
                        continue
                    attrs = attributes(buf)[0] & UNCHANGEABLE
                    if attrs:
                        _refuse(os.path.join(folder, entry.name), root, shown_as, attrs)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(os.path.join(folder, entry.name))
        finally:
            os.close(fd)
    return seen


def _refuse(path: str, root: str, shown_as: str, attrs: int) -> None:
    what = "immutable" if attrs & IMMUTABLE else "append-only"
    rel = os.path.join(shown_as, os.path.relpath(path, root))
    raise VolumeError(
        f"{rel} is {what}: no resync could change it",
        hint=f"Clear the flag (`chattr -{'i' if what == 'immutable' else 'a'}"
             f" FILE`, see `lsattr`) or keep that file out of the volume.",
        details={"file": rel, "attribute": what})


def mode_for(store: Store, path: str, mode: str = "") -> str:
    """How ``path`` is (or will be) adopted: its volume's mode if it has one, else
    ``mode`` or the default (a bind mount as root, a symlink otherwise)."""
    vol = registry.by_path(store, os.path.normpath(path))
    return vol.mode if vol is not None else mode or livepath.default_mode()


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
    state: SyncState | None = None,
) -> Volume:
    """Adopt ``path`` (or resume its adoption); returns the ready volume. ``state``: the
    daemon's sync state (the copy of the replicas starts their change tracking, so the
    first resync afterwards looks only at what changed)."""
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
        vol = Volume(name=name, path=path, role=role, mode=mode_for(store, path, mode),
                     folder=str(folder))
        registry.save(store, vol)
    if vol.ready:
        say(f"{path} is already a managed volume ({vol.name})")
        return vol
    Path(vol.folder).mkdir(parents=True, exist_ok=True, mode=0o700)

    def phase(name: str) -> None:
        vol.phase = name
        registry.save(store, vol)
        say(f"{vol.name}: {name}")

    if vol.mode == livepath.BIND:
        _adopt_bound(store, vol, phase, say, progress, check, state)
    else:
        _adopt_symlinked(store, vol, phase, progress, check, state)
    if vol.phase == "mirrored":
        shutil.rmtree(Path(vol.folder) / "adopt", ignore_errors=True)
        vol.duplex = True
        phase("ready")
    registry.invalidate_facts(state)
    return vol


def _adopt_bound(store: Store, vol: Volume, phase: Report, say: Report,
                 progress: Callable[[Progress], None] | None,
                 check: Callable[[], None] | None, state: SyncState | None) -> None:
    """The original directory stays in place as replica A; B is one copy of it, or a
    snapshot where it is a btrfs subvolume.

    An immutable or append-only entry refuses the adoption. For a copy, the look at the
    source that the copy needs anyway finds them (its ``statx`` of each entry gives the
    attributes: ``screen``), before any copied entry is taken: the copy's groups not yet
    started never start. A snapshot reads nothing: the look (``refuse_unchangeable``)
    runs on a thread of its own beside it, and the snapshot is not recorded before it has
    looked at everything. A refusal leaves nothing behind."""
    a = vol.replica("a")
    if vol.phase == "new":
        phase("bound")
    if vol.phase != "bound":
        return
    livepath.bind_original(vol.path, a)  # (again, after a reboot in the middle)
    refusals: list[VolumeError] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="au-unchangeable") as pool:
        looking = (pool.submit(refuse_unchangeable, a, vol.path)
                   if snapshot.is_subvolume(a) else None)

        def screen(found: dict[str, int] | None) -> None:
            if looking is not None:
                return  # (the look beside the snapshot sees the whole tree)
            try:
                if found is None:  # (the copy's look at the source could not tell)
                    refuse_unchangeable(a, vol.path)
                elif found:
                    first = min(found)
                    _refuse(os.path.join(a, first), a, vol.path, found[first])
            except VolumeError as exc:
                refusals.append(exc)
                raise

        def checked() -> None:
            if looking is not None and looking.done() and isinstance(
                    looking.exception(), VolumeError):
                looking.result()  # (raises it)
            if check is not None:
                check()

        try:
            began = time.monotonic()
            made = snapshot.mirror(a, vol.replica("b"), vol.manifest,
                                   state or SyncState.once())
            if not made:
                # a new tracker of A reads every entry's attributes now (a flag set
                # since an earlier look made no event that would have told it)
                if state is not None:
                    state.trackers.forget(a)
                replica.sync(store, vol, "a", "b", progress=progress, check=checked,
                             state=state, screen=screen)
            if looking is not None:
                looking.result()
        except BaseException:
            refused = refusals[0] if refusals else (
                None if looking is None else _refusal(looking))
            if refused is None:
                raise
            _remove_folder(vol, state)  # (replica A's bind mount first)
            registry.forget(store, vol)
            raise refused from None
    if made:
        replica.snapshot_made(store, vol, "a", "b", time.monotonic() - began, state)
        say(f"{vol.name}: replica b made as a snapshot of the subvolume {vol.path}")
    phase("mirrored")


def _refusal(looking: Future[int]) -> VolumeError | None:
    """The refusal the look for unchangeable entries ended with, once it has ended."""
    try:
        looking.result()
    except VolumeError as exc:
        return exc
    except OSError:
        return None  # (the tree changed under it: the error that stopped the copy stands)
    return None


def _adopt_symlinked(store: Store, vol: Volume, phase: Report,
                     progress: Callable[[Progress], None] | None,
                     check: Callable[[], None] | None, state: SyncState | None) -> None:
    """Unprivileged: copy into A, set the original aside, link the path to A, copy B."""
    path = vol.path
    staging = Manifest(Path(vol.folder) / "adopt")
    staging.path.parent.mkdir(exist_ok=True)
    aside = _aside(path)
    if vol.phase == "new":
        refuse_unchangeable(path, path)
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
        livepath.show(path, vol.replicas, "a", vol.mode)
        phase("attached")
    if vol.phase == "attached":
        replica.sync(store, vol, "a", "b", progress=progress, check=check, state=state)
        if aside.exists():
            shutil.rmtree(aside)
        phase("mirrored")


def _remove_folder(vol: Volume, state: SyncState | None = None) -> None:
    """Remove the replica folder, never through a mount (replica A is the original)."""
    for path in vol.replicas.values():
        while livepath.mounted(path):
            mounts.detach(path)
        watch.forget(path, None if state is None else state.trackers)
    b = vol.replica("b")
    if snapshot.is_subvolume(b):  # (never A: it may be the original)
        try:
            snapshot.delete(b)  # at once, not file by file
        except OSError as exc:
            raise VolumeError(f"cannot delete the snapshot {b}: {exc.strerror}",
                              hint="Something still uses it (`fuser -vm " + b + "`): stop "
                                   "it, then release again.") from exc
    folder = os.path.realpath(vol.folder)
    if any(m.point.startswith(folder + "/") for m in mounts.table()):
        raise VolumeError(f"something is still mounted below {folder}",
                          hint="Unmount it (see `findmnt -R " + folder + "`), then release "
                               "again.")
    shutil.rmtree(vol.folder, ignore_errors=True)


def release(store: Store, vol: Volume, *, report: Report | None = None,
            progress: Callable[[Progress], None] | None = None,
            check: Callable[[], None] | None = None,
            state: SyncState | None = None) -> None:
    """Give back a plain directory at the volume's path with the live content.
    ``state``: the daemon's sync state (the last resync looks only at what changed; the
    replicas' tracking ends)."""
    say = report or (lambda _m: None)
    if vol.session:
        raise VolumeError(f"{vol.name} is part of session {vol.session.get('id')}",
                          hint="Finish the session first.")
    if vol.mode == livepath.BIND:
        _release_bound(store, vol, say, progress, check, state)
    else:
        _release_symlinked(store, vol, say, progress, check)
    _remove_folder(vol, state)
    if state is not None:
        state.forget(vol.manifest)
    registry.forget(store, vol)
    registry.invalidate_facts(state)
    say(f"{vol.path} is a plain directory again")


def _release_bound(store: Store, vol: Volume, say: Report,
                   progress: Callable[[Progress], None] | None,
                   check: Callable[[], None] | None, state: SyncState | None) -> None:
    """The original directory (A) gets the live content and stays alone at the path."""
    if vol.phase != "releasing":
        if vol.phase != "new":
            livepath.bind_original(vol.path, vol.replica("a"))
        if vol.live() == "b":
            replica.sync(store, vol, "b", "a", progress=progress, check=check, state=state)
            livepath.show(vol.path, vol.replicas, "a", vol.mode)
            say(f"{vol.name}: the original directory has the live content again")
        vol.phase = "releasing"
        registry.save(store, vol)
    livepath.unbind(vol.path, vol.replicas, vol.mode)


def _release_symlinked(store: Store, vol: Volume, say: Report,
                       progress: Callable[[Progress], None] | None,
                       check: Callable[[], None] | None) -> None:
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
        livepath.unbind(p, vol.replicas, vol.mode)
        os.rename(tmp, p)
