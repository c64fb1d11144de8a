"""Durable file writes: a temporary file in the same folder, fsync, rename, fsync of the
folder — readers and a crash at any point see either the old file or the new one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(target: Path, suffix: str = "tmp", mode: int = 0o600) -> Iterator[int]:
    """Write ``target`` anew through the descriptor yielded: a temporary file beside it
    (never a link followed), renamed over ``target`` when the block ends. A failure at any
    point (a full disk) leaves the old file and no half-written copy."""
    tmp = target.with_name(f".{target.name}.{suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    try:
        try:
            yield fd
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_all(fd: int, data: bytes | memoryview) -> None:
    """All of ``data`` (a short write, on a filling disk, goes on until it fails)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_durably(target: Path, data: bytes | Iterable[bytes], mode: int = 0o600) -> None:
    """Replace ``target`` with ``data`` (or its pieces, written as they come: a large
    document is never held whole) atomically and durably, with file mode ``mode``."""
    with replacing(target, mode=mode) as fd:
        os.fchmod(fd, mode)  # the umask must not loosen or tighten it
        for piece in (data,) if isinstance(data, bytes) else data:
            write_all(fd, piece)
        os.fsync(fd)
    fsync_dir(target.parent)


def fsync_dir(folder: Path) -> None:
    """Make the names in ``folder`` (a rename into it, a new entry) durable."""
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
