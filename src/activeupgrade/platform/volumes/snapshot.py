"""btrfs subvolume snapshots: a replica made in O(1) of the volume's size.

When the adopted directory is a btrfs subvolume and the replica folder is on the same
filesystem, replica B is made by the kernel as a read-write snapshot of it
(``BTRFS_IOC_SNAP_CREATE_V2``): no file is read or written, every block is shared until
one side changes it. A snapshot keeps every inode as it was (number, ctime, mtime, size,
mode), so each entry's signature in B is the one A had at that instant: the manifest is
written from B's listing at its first load (``Manifest.snapshot_made``), and an entry A
still has with that signature is identical.

A subvolume nested in the directory would appear in a snapshot as an empty placeholder
directory: such a directory (the kernel lists the subvolumes inside one,
``BTRFS_IOC_GET_SUBVOL_ROOTREF``) is copied instead. Deleting a snapshot replica is one
``BTRFS_IOC_SNAP_DESTROY`` (the filesystem frees its blocks in the background).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import struct
import time

from activeupgrade.libc import LIBC, path_bytes
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.tree import DIR_FLAGS

BTRFS_MAGIC = 0x9123683E
"""``f_type`` of a btrfs filesystem (statfs)."""
SUBVOLUME_INO = 256
"""The inode number of a subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID)."""
_SNAP_CREATE_V2 = 0x50009417
"""_IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2) (linux/btrfs.h)."""
_SNAP_DESTROY = 0x5000940F
"""_IOW(0x94, 15, struct btrfs_ioctl_vol_args)."""
_GET_SUBVOL_ROOTREF = 0xD000943D
"""_IOWR(0x94, 61, struct btrfs_ioctl_get_subvol_rootref_args): the subvolumes directly
inside one (up to 255 per call: min_treeid, 255 × (treeid, dirid), num_items)."""
_ROOTREF_SIZE = 4096
_ROOTREF_COUNT = 8 + 255 * 16
_FS_INFO = 0x8400941F
"""_IOR(0x94, 31, struct btrfs_ioctl_fs_info_args): 1024 bytes, the fsid at 16."""
_ARGS_V2 = struct.Struct("=qQQ32x4040s")
"""btrfs_ioctl_vol_args_v2: fd, transid, flags, (qgroup inheritance: none), name."""
_ARGS = struct.Struct("=q4088s")
"""btrfs_ioctl_vol_args: fd, name."""
_UNSUPPORTED = (errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EPERM)
"""What the kernel answers where a snapshot cannot be made (another filesystem, not
btrfs, not a subvolume, not allowed)."""


def on_btrfs(path: str) -> bool:
    """Whether ``path`` is on a btrfs filesystem."""
    buf = ctypes.create_string_buffer(256)  # struct statfs (f_type first)
    if LIBC.statfs(path_bytes(path), buf) != 0:
        return False
    return int(struct.unpack_from("=q", buf.raw)[0]) == BTRFS_MAGIC


def filesystem(path: str) -> bytes | None:
    """The btrfs filesystem's id of ``path`` (the same for all its subvolumes, which each
    have their own device number), or None: not btrfs."""
    if not on_btrfs(path):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        args = bytearray(1024)
        fcntl.ioctl(fd, _FS_INFO, args)
        return bytes(args[16:32])
    except OSError:
        return None
    finally:
        os.close(fd)


def same_filesystem(*paths: str) -> bool:
    """Whether ``paths`` are on one filesystem: one device number, or one btrfs filesystem
    (whose subvolumes each have a device number of their own)."""
    if len({os.stat(p).st_dev for p in paths}) == 1:
        return True
    ids = {filesystem(p) for p in paths}
    return len(ids) == 1 and None not in ids


def is_subvolume(path: str) -> bool:
    """Whether ``path`` (not followed if a symlink) is the root of a btrfs subvolume."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_ino == SUBVOLUME_INO and on_btrfs(path)


def _name(path: str) -> tuple[str, bytes]:
    parent, name = os.path.split(os.path.normpath(path))
    return parent or ".", os.fsencode(name)


def create(src: str, dst: str) -> None:
    """A read-write snapshot of subvolume ``src`` at ``dst`` (which must not exist)."""
    parent, name = _name(dst)
    fs = os.open(src, DIR_FLAGS)
    try:
        fp = os.open(parent, DIR_FLAGS)
        try:
            args = bytearray(_ARGS_V2.pack(fs, 0, 0, name))
            fcntl.ioctl(fp, _SNAP_CREATE_V2, args)
        finally:
            os.close(fp)
    finally:
        os.close(fs)


def delete(path: str) -> None:
    """Delete subvolume ``path`` with everything in it (its blocks are freed later)."""
    parent, name = _name(path)
    fp = os.open(parent, DIR_FLAGS)
    try:
        fcntl.ioctl(fp, _SNAP_DESTROY, bytearray(_ARGS.pack(0, name)))
    finally:
        os.close(fp)


def nested(path: str) -> bool:
    """Whether subvolume ``path`` holds another subvolume (its snapshot would hold an empty
    folder there); True where the kernel cannot tell."""
    fd = os.open(path, DIR_FLAGS)
    try:
        args = bytearray(_ROOTREF_SIZE)
        try:
            fcntl.ioctl(fd, _GET_SUBVOL_ROOTREF, args)
        except OSError as exc:
            if exc.errno == errno.EOVERFLOW:
                return True  # more than one call's worth of them
            if exc.errno in _UNSUPPORTED:
                return True
            raise
        return args[_ROOTREF_COUNT] > 0
    finally:
        os.close(fd)


def mirror(src: str, dst: str, manifest: Manifest, state: SyncState) -> bool:
    """Make ``dst`` (absent, an empty folder or an earlier snapshot) a snapshot of
    subvolume ``src`` and note it in ``manifest`` (whose entries are written at its next
    load); False where the filesystem does not allow it (the caller copies instead) and
    ``dst`` is left as an empty folder."""
    if not is_subvolume(src) or nested(src):
        return False
    state.trackers.forget(dst)
    if is_subvolume(dst):
        delete(dst)  # an interrupted earlier mirror
    elif os.path.isdir(dst):
        if os.listdir(dst):
            return False  # an interrupted copy: it goes on
        os.rmdir(dst)
    # before the snapshot: its instant is somewhere during the call (which commits a
    # transaction), and a change just after it may share the clock tick of one just before
    before = time.time_ns()
    try:
        create(src, dst)
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise
        os.makedirs(dst, mode=0o755, exist_ok=True)
        return False
    manifest.snapshot_made(os.path.basename(os.path.normpath(dst)), before)
    state.forget(manifest)
    return True
