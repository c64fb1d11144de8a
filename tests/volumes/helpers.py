"""Helpers for volume tests: trees, tree hashes, an engine on the real host platform."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

from activeupgrade.bus import Bus
from activeupgrade.engine.engine import Engine
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperationalState, OperatorAction
from activeupgrade.session.host import HostPlatform
from activeupgrade.store.db import Store

FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_IMMUTABLE_FL, FS_APPEND_FL = 0x10, 0x20


def set_flags(path: Path, flags: int) -> None:
    """Set the immutable and append-only flags of ``path`` to those of ``flags``, the
    others as they are (ext4 refuses to clear its extents flag: EPERM or EOPNOTSUPP)."""
    import fcntl
    import struct

    mine = FS_IMMUTABLE_FL | FS_APPEND_FL
    fd = os.open(path, os.O_RDONLY)
    try:
        (now,) = struct.unpack("l", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0)))
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", (now & ~mine) | (flags & mine)))
    finally:
        os.close(fd)


def tree_hash(root: Path) -> str:
    """Content and metadata of a tree, independent of our code (os.walk + sha256)."""
    h = hashlib.sha256()
    root = Path(os.path.realpath(root))
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            p = Path(dirpath, name)
            st = p.lstat()
            rel = str(p.relative_to(root))
            h.update(f"{rel}|{stat.S_IFMT(st.st_mode)}|{stat.S_IMODE(st.st_mode)}|"
                     f"{st.st_uid}|{st.st_gid}".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(f"|{st.st_mtime_ns}|".encode() + p.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
    return h.hexdigest()


def unmount_under(folder: Path) -> None:
    """Lazily unmount whatever a failed test left mounted below ``folder``."""
    prefix = os.path.realpath(folder) + "/"
    for _ in range(8):  # stacked mounts: each round removes the topmost of each point
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            points = [line.split()[4] for line in fh]
        below = sorted({p for p in points if p.startswith(prefix)}, reverse=True)
        if not below:
            return
        for point in below:
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def session_config(folder: Path, volumes: list[tuple[Path, str]]) -> Path:
    """A configuration file for ``volumes``. Its private link's addresses are left to the
    tool, which takes a free /30 under a host-wide lock: addresses a test picked itself
    (once from its pid) could be another run's at the same time."""
    lines = [f'[[volume]]\npath = "{p}"\nrole = "{role}"\n' for p, role in volumes]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "session.toml"
    path.write_text("\n".join(lines))
    return path


def engine_for(home: Path, config: Path | None = None) -> tuple[Engine, Store]:
    instance = Instance(home)
    instance.ensure()
    store = Store(instance.db)
    engine = Engine(instance, store, Bus(), HostPlatform(instance, store))
    if config is not None:
        engine.set_config(str(config))
    return engine, store


def act(engine: Engine, action: OperatorAction) -> None:
    engine.submit(action)
    status = engine.wait(120)
    assert status.operational_state is OperationalState.READY, (action, status.reason)
