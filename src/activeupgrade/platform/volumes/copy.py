"""Copying one entry's data and metadata onto a replica.

Data goes through ``FICLONE`` (a reflink: instant, shares blocks) when the filesystem
allows it, else ``copy_file_range`` (kernel-side copy, no trip through user space).
New content is always written to a temporary name beside the target and renamed over it,
so a crash never leaves a half-written file under a real name and an inode shared by hard
links elsewhere in the replica is never modified in place.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from dataclasses import dataclass

from activeupgrade.errors import VolumeError
from activeupgrade.platform.volumes.tree import xattrs

FICLONE = 0x40049409
"""ioctl number of FICLONE (linux/fs.h)."""

IS_ROOT = os.geteuid() == 0
_TOLERATED_XATTR = ("security.",)
"""Namespaces a filesystem or LSM may refuse to set; refusals there are not fatal."""


@dataclass
class CopyFlags:
    """What the filesystem turned out to support (learned once per resync)."""

    reflink: bool = True
    copy_range: bool = True


def temp_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.au-tmp")


def _copy_fd(fi: int, fo: int, size: int, flags: CopyFlags) -> None:
    if flags.reflink and size > 0:
        try:
            fcntl.ioctl(fo, FICLONE, fi)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
                raise
            flags.reflink = False
    if flags.copy_range:
        try:
            while True:
                n = os.copy_file_range(fi, fo, 1 << 30)
                if n == 0:
                    return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            flags.copy_range = False
            os.lseek(fi, 0, os.SEEK_SET)
            os.lseek(fo, 0, os.SEEK_SET)
            os.ftruncate(fo, 0)
    while True:
        chunk = os.read(fi, 1 << 20)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(fo, view):]


def _set_xattrs(target: int | str, src_attrs: dict[str, bytes], dst_attrs: dict[str, bytes],
                link: bool = False) -> None:
    follow = not link
    for name, value in src_attrs.items():
        if dst_attrs.get(name) != value:
            try:
                os.setxattr(target, name, value, follow_symlinks=follow)
            except OSError:
                if not name.startswith(_TOLERATED_XATTR):
                    raise
    for name in dst_attrs.keys() - src_attrs.keys():
        try:
            os.removexattr(target, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno != errno.ENODATA and not name.startswith(_TOLERATED_XATTR):
                raise


def _chown(target: int | str, st: os.stat_result, cur: os.stat_result | None,
           link: bool = False) -> None:
    if cur is not None and (cur.st_uid, cur.st_gid) == (st.st_uid, st.st_gid):
        return
    if not IS_ROOT and st.st_uid != os.geteuid():
        return  # only root can give files away; verify reports the owner difference
    os.chown(target, st.st_uid, st.st_gid, follow_symlinks=not link)


def copy_file(src: str, dst: str, st: os.stat_result, flags: CopyFlags) -> os.stat_result:
    """Copy regular file ``src`` (lstat ``st``) to ``dst`` with all its metadata; returns
    the copy's final stat (taken after the rename, which changes its ctime)."""
    tmp = temp_name(dst)
    fi = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fo = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            _copy_fd(fi, fo, st.st_size, flags)
            _chown(fo, st, None)
            os.fchmod(fo, stat.S_IMODE(st.st_mode))
            sx = xattrs(fi)
            if sx:
                _set_xattrs(fo, sx, {})
            os.utime(fo, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.replace(tmp, dst)
            return os.fstat(fo)
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def copy_special(src: str, dst: str, st: os.stat_result) -> None:
    """Recreate a symlink, fifo, socket or device node ``src`` at ``dst``."""
    tmp = temp_name(dst)
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    link = stat.S_ISLNK(st.st_mode)
    try:
        if link:
            os.symlink(os.readlink(src), tmp)
        else:
            os.mknod(tmp, st.st_mode, st.st_rdev)
    except PermissionError as exc:
        raise VolumeError(
            f"cannot create the special file {dst}: {exc.strerror}",
            hint="Device nodes can only be copied by root; run the tool as root.",
        ) from exc
    apply_meta(src, tmp, st, None)
    os.replace(tmp, dst)


def apply_meta(src: str, dst: str, st: os.stat_result, cur: os.stat_result | None) -> None:
    """Make ``dst``'s owner, mode, xattrs and times those of ``src`` (lstat ``st``).
    ``cur`` is ``dst``'s lstat when known (saves syscalls that would change nothing)."""
    link = stat.S_ISLNK(st.st_mode)
    _chown(dst, st, cur, link)
    if not link:
        if cur is None or cur.st_mode != st.st_mode:
            os.chmod(dst, stat.S_IMODE(st.st_mode))
        sx, dx = xattrs(src), xattrs(dst)
        if sx != dx:
            _set_xattrs(dst, sx, dx)
    # Only when needed: every change moves ctime, and a fresh ctime keeps the entry
    # "racily clean" (untrusted) in the manifest for one more resync.
    if cur is None or cur.st_mtime_ns != st.st_mtime_ns:
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=not link)
