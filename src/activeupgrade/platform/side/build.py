"""Carrying out the view (``side/view.py``) inside the Upgrade Side's new mount namespace.

Run by the side's init as real root, before the namespace is locked:

1. ``leave_chroot``: when the daemon runs in a chroot, the init climbs to the namespace's
   real root (only there can every mount be made private and the root be switched with
   ``pivot_root``); the daemon's root stays the base of every path of the plan.
2. every mount of the namespace becomes private: nothing done here reaches the host;
3. ``assemble``: the layers in order, under a new root folder;
4. ``enter_root``: ``pivot_root`` into it and detach everything else, so that nothing of
   the host's tree remains in the namespace.

Each failure is a ``BuildError`` naming the layer and the system call's reason.
"""

from __future__ import annotations

import os
import stat

from activeupgrade.platform.side import kernel as k
from activeupgrade.platform.side.layers import POLICY_SCRIPT, Layer, LayerKind

NODEV = k.MS_NODEV
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
"""Host-wide knobs in /proc, read-only inside (root there is root's uid)."""
PROC_HIDDEN_FILES = ("kcore", "keys", "timer_list", "sched_debug", "latency_stats", "kmsg",
                     "kallsyms", "kpagecount", "kpageflags", "kpagecgroup", "config.gz")
PROC_HIDDEN_DIRS = ("acpi", "scsi", "asound", "driver")
SIDE_SYSCTLS = {"net/ipv4/ip_unprivileged_port_start": "0",
                "net/ipv4/ping_group_range": "0 2147483647"}
"""Per network namespace: the side's root may bind any port and ping (its capabilities
do not extend to a network namespace the host owns)."""


class BuildError(Exception):
    """A layer of the view could not be built; the message says which and why."""


def path_of(fd: int) -> str:
    """The absolute path of the folder ``fd`` as seen from the current root."""
    parts: list[str] = []
    cur = os.dup(fd)
    try:
        while True:
            here = os.fstat(cur)
            parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=cur)
            up = os.fstat(parent)
            if (up.st_dev, up.st_ino) == (here.st_dev, here.st_ino):
                os.close(parent)
                break
            name = next((e.name for e in os.scandir(parent)
                         if _same(e.stat(follow_symlinks=False), here)), None)
            os.close(cur)
            cur = parent
            if name is None:
                raise BuildError("cannot find the daemon's root folder from the "
                                 "namespace's root")
            parts.append(name)
    finally:
        os.close(cur)
    return "/" + "/".join(reversed(parts))


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def leave_chroot(inner: str) -> str:
    """Climb from the daemon's root to the mount namespace's root; return the daemon's root
    as a path from there ("" when the daemon is not in a chroot). ``inner`` is any folder
    below the daemon's root."""
    daemon_root = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        os.chroot(inner)  # the working folder is now outside the root: ".." climbs
        for _ in range(4096):
            before = os.stat(".")
            os.chdir("..")
            if _same(os.stat("."), before):
                break
        os.chroot(".")
        os.chdir("/")
        top = path_of(daemon_root)
    finally:
        os.close(daemon_root)
    return "" if top == "/" else top


def make_private() -> None:
    k.mount(None, "/", None, k.MS_REC | k.MS_PRIVATE)


def _escape(path: str) -> str:
    """A path as an overlayfs option value (``,``, ``:`` and ``\\`` escaped)."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def _mkdirs(path: str, created: list[str], view_root: str) -> None:
    """Create ``path`` (inside the view) and its missing parents, noting each. A symbolic
    link there (a live path in symlink mode) is replaced: a mount would follow it."""
    if os.path.isdir(path) and not os.path.islink(path):
        return
    _mkdirs(os.path.dirname(path), created, view_root)
    if os.path.islink(path):
        os.unlink(path)
    os.mkdir(path, 0o755)
    created.append("/" + os.path.relpath(path, view_root))


class Assembler:
    """Mounts the layers under ``new_root``; host paths are taken under ``base``."""

    def __init__(self, base: str, new_root: str, scratch: str) -> None:
        self.base = base
        self.new_root = new_root
        self.scratch = scratch
        self.created: list[str] = []
        """Folders and files made in the view as mount points (not the side's writes)."""
        self.notes: list[str] = []
        """Layers shown otherwise than planned, and why."""

    def host(self, path: str) -> str:
        return self.base + path if self.base else path

    def inside(self, path: str) -> str:
        return self.new_root if path == "/" else self.new_root + path

    def scratch_dir(self, name: str, owner: tuple[int, int, int] = (0, 0, 0o755)) -> str:
        path = os.path.join(self.scratch, name)
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            os.chown(path, owner[0], owner[1])
            os.chmod(path, owner[2])
        return path

    def bind(self, source: str, target: str, *, writable: bool, flags: int = NODEV) -> None:
        k.mount(source, target, None, k.MS_BIND)
        extra = 0 if writable else k.MS_RDONLY
        k.mount(None, target, None, k.MS_REMOUNT | k.MS_BIND | flags | extra)

    def overlay(self, layer: Layer, lower: str, target: str, *, writable: bool) -> None:
        """Copy-on-write (the upper folder on the scratch), or read-only: an overlay
        without upper folder (two lower layers, the second empty). Unlike a bind mount,
        an overlay never lets a Unix socket of the host be reached through it."""
        if writable:
            upper = self.scratch_dir(layer.scratch)
            work = self.scratch_dir(layer.scratch.replace("upper/", "work/", 1))
            options = (f"lowerdir={_escape(lower)},upperdir={_escape(upper)},"
                       f"workdir={_escape(work)}")
        else:
            options = f"lowerdir={_escape(lower)}:{_escape(self.scratch_dir('empty'))}"
        k.mount("au-upgrade-side", target, "overlay", NODEV | (0 if writable else k.MS_RDONLY),
                options)

    def target(self, layer: Layer) -> str:
        path = self.inside(layer.path)
        if layer.kind in (LayerKind.SYSTEM, LayerKind.DATA, LayerKind.FRESH):
            _mkdirs(path, self.created, self.new_root)
        return path

    def add(self, layer: Layer) -> None:
        try:
            self._add(layer)
        except OSError as exc:
            raise BuildError(f"{layer.kind.value} layer {layer.path} ({layer.why}): "
                             f"{exc.strerror or exc}") from exc

    def _add(self, layer: Layer) -> None:
        kind = layer.kind
        if kind in (LayerKind.ROOT, LayerKind.OUTSIDE, LayerKind.PACKAGES):
            target = self.inside(layer.path)
            if kind is not LayerKind.ROOT and not os.path.isdir(target):
                self.notes.append(f"{layer.path}: not shown (no such folder in the view)")
                return
            lower = self.host(layer.source)
            if layer.writable:
                try:
                    self.overlay(layer, lower, target, writable=True)
                    return
                except OSError as exc:
                    if kind is LayerKind.ROOT:
                        raise
                    self.notes.append(f"{layer.path}: read-only (copy-on-write refused: "
                                      f"{exc.strerror})")
            try:
                self.overlay(layer, lower, target, writable=False)
            except OSError as exc:
                if kind is LayerKind.ROOT:
                    raise
                self.notes.append(f"{layer.path}: hidden (no overlay possible: {exc.strerror})")
                k.mount("au-hidden", target, "tmpfs", k.MS_RDONLY | NODEV | k.MS_NOSUID
                        | k.MS_NOEXEC, "size=4k,mode=0755")
        elif kind is LayerKind.FILE:
            target = self.inside(layer.path)
            if os.path.lexists(target):
                self.bind(self.host(layer.source), target, writable=False)
        elif kind is LayerKind.MASK:
            target = self.inside(layer.path)
            if os.path.isdir(target) and not os.path.islink(target):
                k.mount("au-hidden", target, "tmpfs", k.MS_RDONLY | NODEV | k.MS_NOSUID
                        | k.MS_NOEXEC, "size=4k,mode=0700")
        elif kind is LayerKind.DEV:
            self.dev(self.inside("/dev"))
        elif kind is LayerKind.PROC:
            self.proc(self.inside("/proc"))
        elif kind is LayerKind.SYS:
            target = self.inside("/sys")
            if os.path.isdir(target):
                k.mount("sysfs", target, "sysfs", k.MS_RDONLY | NODEV | k.MS_NOSUID
                        | k.MS_NOEXEC)
        elif kind in (LayerKind.FRESH, LayerKind.DATA):
            target = self.target(layer)
            self.bind(self.scratch_dir(layer.scratch, layer.owner), target, writable=True)
        elif kind is LayerKind.SYSTEM:
            self.bind(self.host(layer.source), self.target(layer), writable=True)
        elif kind is LayerKind.POLICY:
            self.policy(layer)
        elif kind is LayerKind.NEEDED:
            self.needed(layer)

    def dev(self, target: str) -> None:
        k.mount("au-dev", target, "tmpfs", k.MS_NOSUID, "mode=0755,size=64k")
        for name, major, minor in DEVICES:
            path = os.path.join(target, name)
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
            os.chmod(path, 0o666)
        for name in ("pts", "shm", "mqueue"):
            os.mkdir(os.path.join(target, name), 0o755)
        k.mount("devpts", os.path.join(target, "pts"), "devpts", k.MS_NOSUID | k.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5")
        k.mount("shm", os.path.join(target, "shm"), "tmpfs", k.MS_NOSUID | NODEV,
                "mode=1777")
        k.mount("mqueue", os.path.join(target, "mqueue"), "mqueue",
                k.MS_NOSUID | NODEV | k.MS_NOEXEC)
        for name, to in (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"),
                         ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore")):
            os.symlink(to, os.path.join(target, name))

    def proc(self, target: str) -> None:
        k.mount("proc", target, "proc", k.MS_NOSUID | NODEV | k.MS_NOEXEC)
        for name, value in SIDE_SYSCTLS.items():
            try:
                with open(os.path.join(target, "sys", name), "w") as fh:
                    fh.write(value)
            except OSError as exc:
                self.notes.append(f"/proc/sys/{name}: {exc.strerror}")
        for name in PROC_READ_ONLY:
            path = os.path.join(target, name)
            if os.path.exists(path):
                self.bind(path, path, writable=False, flags=NODEV | k.MS_NOSUID | k.MS_NOEXEC)
        null = self.inside("/dev/null")
        for name in PROC_HIDDEN_FILES:
            path = os.path.join(target, name)
            if os.path.isfile(path):
                self.bind(null, path, writable=False, flags=k.MS_NOSUID | k.MS_NOEXEC)
        for name in PROC_HIDDEN_DIRS:
            path = os.path.join(target, name)
            if os.path.isdir(path):
                k.mount("au-hidden", path, "tmpfs", k.MS_RDONLY | NODEV | k.MS_NOSUID
                        | k.MS_NOEXEC, "size=4k,mode=0555")

    def needed(self, layer: Layer) -> None:
        """A listed installer or package: shown read-only where the side would not see it
        (its own /tmp, a data volume's scratch); left as it is where it already shows."""
        target = self.inside(layer.path)
        if os.path.lexists(target):
            return
        source = self.host(layer.source)
        if not os.path.isdir(source) and not os.path.isfile(source):
            self.notes.append(f"{layer.path}: not shown (neither a file nor a folder)")
            return
        _mkdirs(os.path.dirname(target), self.created, self.new_root)
        if os.path.isdir(source):
            os.mkdir(target, 0o755)
            self.created.append(layer.path)
            self.overlay(layer, source, target, writable=False)
            return
        with open(target, "x"):
            pass
        self.created.append(layer.path)
        self.bind(source, target, writable=False, flags=NODEV | k.MS_NOSUID)

    def policy(self, layer: Layer) -> None:
        script = os.path.join(self.scratch, layer.scratch)
        with open(script, "w") as fh:
            fh.write(POLICY_SCRIPT)
        os.chmod(script, 0o755)
        target = self.inside(layer.path)
        if not os.path.lexists(target):
            if not layer.create:
                self.notes.append(f"{layer.path}: not installed (no file to mount it on)")
                return
            with open(target, "x"):
                pass
            self.created.append(layer.path)
        self.bind(script, target, writable=False, flags=NODEV | k.MS_NOSUID)


def enter_root(new_root: str) -> None:
    """Make ``new_root`` the root of the namespace; nothing else stays in it."""
    os.chdir(new_root)
    k.pivot_root(".", ".")
    k.umount(".", k.MNT_DETACH)
    os.chdir("/")


def empty(path: str) -> None:
    """Remove everything inside ``path`` (the side's /run and /tmp start empty)."""
    if not os.path.isdir(path):
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            empty(entry.path)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)
