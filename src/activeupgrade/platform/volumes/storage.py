"""How a volume's replicas are stored, chosen automatically from their filesystem.

- ``plain``: two directory trees; copies go through ``copy_file_range`` (the kernel copies,
  no trip through user space), sparse files extent by extent.
- ``reflink``: the filesystem shares blocks between files (XFS with ``reflink=1``, btrfs):
  a copy is a ``FICLONE`` of the whole file, instant and taking no space until one side
  changes; the first copy into an empty replica runs ``cp --reflink=auto``.
- ``snapshot``: btrfs, and the adopted directory is a subvolume: replica B is a snapshot of
  it (``snapshot.py``: adoption reads and writes no file, whatever the volume's size);
  later copies are reflinks as above.

The backend is found by trying it in the replica folder (never in a live tree): two
scratch files, one cloned onto the other. ``au volume show`` prints it; every resync uses
it (``copy.CopyFlags``) and reports whether it cloned (``Result.reflink``).
"""

from __future__ import annotations

import errno
import fcntl
import os
from enum import StrEnum

from activeupgrade.platform.volumes.copy import FICLONE


class Storage(StrEnum):
    """A volume's storage backend."""

    PLAIN = "plain"
    """Directory trees on any filesystem; data copied by the kernel (copy_file_range)."""
    REFLINK = "reflink"
    """Directory trees on a filesystem with shared extents: copies are reflinks."""
    SNAPSHOT = "snapshot"
    """btrfs subvolumes: replica B made as a snapshot of A; copies are reflinks."""

    @property
    def clones(self) -> bool:
        """Whether copies share blocks (instant, no space until changed)."""
        return self is not Storage.PLAIN


def detect(folder: str | os.PathLike[str]) -> Storage:
    """The backend the filesystem of ``folder`` (a replica folder: scratch files are
    created there) allows. A folder that cannot be written is taken as plain."""
    base = os.path.join(os.fspath(folder), f".au-storage-{os.getpid()}")
    src, dst = base + ".a", base + ".b"
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fi = os.open(src, flags, 0o600)
    except OSError:
        return Storage.PLAIN
    try:
        os.write(fi, b"\0" * 4096)
        fo = os.open(dst, flags, 0o600)
        try:
            fcntl.ioctl(fo, FICLONE, fi)
            return Storage.REFLINK
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY,
                                 errno.EPERM):
                raise
            return Storage.PLAIN
        finally:
            os.close(fo)
    finally:
        os.close(fi)
        for p in (src, dst):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
