"""The C library, for the system calls Python's ``os`` module has no wrapper for (mount,
open_tree, move_mount, mount_setattr, pivot_root, inotify, statx, prctl).

One handle of the library this process already runs with (no search: ``find_library``
would start ``ldconfig``), and the two helpers every caller needs: a result checked into an
``OSError`` that carries errno and the operation in words, and a path as bytes.
"""

from __future__ import annotations

import ctypes
import os

LIBC = ctypes.CDLL(None, use_errno=True)
"""The C library this process already runs with."""


def checked(result: int, what: str) -> int:
    """``result`` of a C call, or the OSError it means (errno, ``what``: its strerror)."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def path_bytes(path: str | None) -> bytes | None:
    """A path as the C library takes it (None stays NULL)."""
    return None if path is None else os.fsencode(path)
