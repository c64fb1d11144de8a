"""Copying one entry's data and metadata onto a replica.

Data goes through ``FICLONE`` (a reflink: instant, shares blocks) when the filesystem
allows it, else ``copy_file_range`` (kernel-side copy, no trip through user space). A
sparse source (fewer blocks allocated than its size needs) is copied extent by extent
(``SEEK_DATA``/``SEEK_HOLE``): its holes stay holes in the copy.

Where the new content goes depends on what stands at the target (the target replica is
never the live one while a resync writes to it):

- nothing: the file is created under its real name;
- a regular file with a single link that no process has open or mapped: it is
  overwritten in place and cut to size. Blocks already allocated are reused, where a new
  file renamed over the old one makes the filesystem allocate, flush (ext4's
  replace-by-rename heuristic) and free blocks: five times the cost for small files.
  "No process has it open" is asked of the kernel by taking a write lease, which is
  refused while any other descriptor or mapping of the file exists: a program still
  running from a replica that was live before a merge keeps its libraries intact;
- otherwise (other hard links, in use, a filesystem without leases): a temporary name
  beside it, renamed over it, so the inode others use is never modified.

A crash half-way leaves a target whose size, time or content differ from its source; the
entry is not in the manifest or journal yet, so the next resync compares and copies it
again.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
from dataclasses import dataclass, field

from activeupgrade.errors import VolumeError
from activeupgrade.platform.volumes.tree import StatLike, xattrs

FICLONE = 0x40049409
"""ioctl number of FICLONE (linux/fs.h)."""
F_SETSIG = 10
"""fcntl command setting the signal a lease break sends (linux/fcntl.h)."""

IS_ROOT = os.geteuid() == 0
_TOLERATED_XATTR = ("security.",)
"""Namespaces a filesystem or LSM may refuse to set; refusals there are not fatal."""


@dataclass
class CopyFlags:
    """What the filesystem turned out to support (learned once per resync), and which
    target directories give new files a default ACL (asked once per directory)."""

    reflink: bool = True
    copy_range: bool = True
    acl_dirs: dict[str, bool] = field(default_factory=dict)

    def inherits_acl(self, folder: str) -> bool:
        known = self.acl_dirs.get(folder)
        if known is None:
            try:
                os.getxattr(folder, "system.posix_acl_default")
                known = True
            except OSError as exc:
                if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                known = False
            self.acl_dirs[folder] = known
        return known


def temp_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.au-tmp")


def sparse(st: os.stat_result) -> bool:
    """Whether the file of ``st`` has holes (fewer bytes allocated than its size)."""
    return st.st_blocks * 512 < st.st_size


def _copy_range(fi: int, fo: int, start: int, end: int, flags: CopyFlags) -> None:
    """Bytes ``start``..``end`` of ``fi`` to the same offsets of ``fo``."""
    off = start
    while off < end and flags.copy_range:
        try:
            n = os.copy_file_range(fi, fo, end - off, off, off)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            flags.copy_range = False
            break
        if n == 0:
            return
        off += n
    while off < end:
        chunk = os.pread(fi, min(1 << 20, end - off), off)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            n = os.pwrite(fo, view, off)
            view, off = view[n:], off + n


def _copy_sparse(fi: int, fo: int, size: int, flags: CopyFlags) -> int | None:
    """Copy the data extents of ``fi`` into ``fo`` (cut to nothing first), leaving the
    holes unallocated; None where the filesystem cannot say where the holes are."""
    os.ftruncate(fo, 0)
    off = 0
    while off < size:
        try:
            data = os.lseek(fi, off, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break  # only a hole up to the end
            if exc.errno == errno.EINVAL and off == 0:
                return None
            raise
        if data >= size:
            break
        hole = min(os.lseek(fi, data, os.SEEK_HOLE), size)
        _copy_range(fi, fo, data, hole, flags)
        off = hole
    os.ftruncate(fo, size)
    return size


def _copy_fd(fi: int, fo: int, size: int, flags: CopyFlags, holes: bool = False) -> int | None:
    """Copy ``fi`` into the empty or to-be-cut ``fo`` from offset 0; returns the bytes
    written, or None when ``fo`` is a reflink of the whole of ``fi`` (nothing to cut).
    Copies at most ``size`` bytes (the size the scan saw: a file that grows meanwhile has
    a newer ctime, so the manifest never vouches for the shorter copy). ``holes``: the
    source is sparse (copied extent by extent)."""
    if flags.reflink and size > 0:
        try:
            fcntl.ioctl(fo, FICLONE, fi)
            return None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
                raise
            flags.reflink = False
    if holes:
        done_sparse = _copy_sparse(fi, fo, size, flags)
        if done_sparse is not None:
            return done_sparse
    done = 0
    if flags.copy_range:
        try:
            while done < size:
                n = os.copy_file_range(fi, fo, size - done)
                if n == 0:
                    break
                done += n
            return done
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            flags.copy_range = False
            os.lseek(fi, 0, os.SEEK_SET)
            os.lseek(fo, 0, os.SEEK_SET)
            done = 0
    while done < size:
        chunk = os.read(fi, min(1 << 20, size - done))
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            n = os.write(fo, view)
            view = view[n:]
            done += n
    return done


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


def _chown(target: int | str, st: os.stat_result, cur: StatLike | None,
           link: bool = False) -> None:
    if cur is not None and (cur.st_uid, cur.st_gid) == (st.st_uid, st.st_gid):
        return
    if not IS_ROOT and st.st_uid != os.geteuid():
        return  # only root can give files away; verify reports the owner difference
    os.chown(target, st.st_uid, st.st_gid, follow_symlinks=not link)


_RD = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OVER = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""O_NONBLOCK: should a fifo have taken the file's place since the scan, opening it must
not wait for a reader, nor wait for another process's lease on the file to be broken
(either way it is then replaced through a temporary name)."""


def _unshared(fd: int) -> bool:
    """Whether no other descriptor or memory mapping of ``fd``'s file exists anywhere: the
    kernel grants a write lease only then. The lease is given back at once; its break
    signal is one that is ignored by default (SIGIO would end the process)."""
    try:
        fcntl.fcntl(fd, F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    except OSError:
        return False  # in use, or no leases here (not the owner, network filesystem)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return True


def _open_target(dst: str, cur: StatLike | None, linked: bool = False,
                 mode: int = 0o600) -> tuple[int, str | None]:
    """A descriptor to write ``dst``'s new content to, and the temporary name it has
    (None: it is ``dst`` itself). ``cur``: what the scan saw at ``dst`` (None: nothing);
    ``linked``: always a temporary name; ``mode``: of a file created under its name."""
    if linked:
        pass
    elif cur is None:
        try:
            return os.open(dst, _NEW, mode), None
        except FileExistsError:
            pass  # something appeared since the scan: leave it to the rename
    elif stat.S_ISREG(cur.st_mode) and cur.st_nlink == 1:
        try:
            fo = os.open(dst, _OVER)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.ETXTBSY,
                                 errno.EACCES, errno.EPERM, errno.EAGAIN):
                raise
        else:
            now = os.fstat(fo)
            if stat.S_ISREG(now.st_mode) and now.st_nlink == 1 and _unshared(fo):
                return fo, None
            os.close(fo)
    tmp = temp_name(dst)
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o600), tmp


def copy_file(src: str, dst: str, st: os.stat_result, flags: CopyFlags,
              cur: StatLike | None = None, linked: bool = False) -> os.stat_result:
    """Copy regular file ``src`` (lstat ``st``) to ``dst`` with all its metadata; returns
    the copy's final stat. ``cur``: the target's lstat from the scan (None: absent);
    ``linked``: the target is a hard-link group's leader (always through a temporary
    name, which gives the group a fresh inode)."""
    mode = stat.S_IMODE(st.st_mode)
    fi = os.open(src, _RD)
    try:
        fo, tmp = _open_target(dst, cur, linked, mode & 0o777)
        try:
            if tmp is None and cur is None:
                return _finish_new(fi, fo, dst, st, mode, flags)
            in_place = tmp is None
            if in_place and flags.reflink:
                os.ftruncate(fo, 0)  # a clone replaces only the range it covers
            written = _copy_fd(fi, fo, st.st_size, flags, sparse(st))
            if in_place and written is not None:
                os.ftruncate(fo, written)
            # owner before mode: a change of owner clears set-id bits
            _chown(fo, st, None)
            os.fchmod(fo, mode)
            sx = xattrs(fi)
            dx = xattrs(fo)  # in place: the old ones
            if sx != dx:
                _set_xattrs(fo, sx, dx)
            os.utime(fo, ns=(st.st_atime_ns, st.st_mtime_ns))
            if tmp is not None:
                os.replace(tmp, dst)
            return os.fstat(fo)
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def _finish_new(fi: int, fo: int, dst: str, st: os.stat_result, mode: int,
                flags: CopyFlags) -> os.stat_result:
    """Content and metadata of a file just created under its own name with ``mode``'s
    permission bits. Owner and mode are most often right from the start (root copying
    root's files): the final stat tells, and only then are they changed. The only
    attributes a new file can have are a default ACL of its directory."""
    _copy_fd(fi, fo, st.st_size, flags, sparse(st))
    sx = xattrs(fi)
    dx = xattrs(fo) if sx or flags.inherits_acl(os.path.dirname(dst)) else {}
    if sx != dx:
        _set_xattrs(fo, sx, dx)
    os.utime(fo, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.fstat(fo)
    if (now.st_uid, now.st_gid) == (st.st_uid, st.st_gid) and stat.S_IMODE(now.st_mode) == mode:
        return now
    # owner first (it clears set-id bits and file capabilities), then attributes, mode
    _chown(fo, st, now)
    if sx:
        _set_xattrs(fo, sx, xattrs(fo))
    os.fchmod(fo, mode)
    return os.fstat(fo)


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


def apply_meta(src: str, dst: str, st: os.stat_result, cur: StatLike | None) -> None:
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
