"""The Linux system calls the Upgrade Side is built with, and nothing else.

``mount``, ``umount2``, ``pivot_root``, ``unshare``, ``setns`` and the capability bounding
set have no wrapper in Python's ``os`` module before 3.12 (and ``pivot_root`` none in libc),
so they are called here through ``ctypes``. Each failure is an ``OSError`` carrying errno
and the operation in words, so that whoever builds the side can say exactly what failed.
"""

from __future__ import annotations

import ctypes
import platform

from activeupgrade.libc import LIBC, checked, path_bytes

# clone/unshare flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36

CAPABILITIES = {
    "CAP_MKNOD": 27, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_BOOT": 22,
    "CAP_SYS_TIME": 25, "CAP_MAC_ADMIN": 33, "CAP_MAC_OVERRIDE": 32, "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_CONTROL": 30,
    "CAP_AUDIT_READ": 37, "CAP_BPF": 39, "CAP_PERFMON": 38, "CAP_SYS_PACCT": 20,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_SYS_TTY_CONFIG": 26, "CAP_LEASE": 28,
}
"""Capabilities by number (linux/capability.h), for those the Upgrade Side drops."""

_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217,
               "i686": 217, "armv7l": 218}
"""pivot_root's system call number per machine (glibc has no wrapper)."""





def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); the message names the target and the filesystem type."""
    what = f"mount {fstype or ('bind' if flags & MS_BIND else 'change')} on {target}"
    checked(LIBC.mount(path_bytes(source), path_bytes(target), path_bytes(fstype),
                       ctypes.c_ulong(flags), path_bytes(data)), what)


def umount(target: str, flags: int = 0) -> None:
    checked(LIBC.umount2(path_bytes(target), ctypes.c_int(flags)), f"unmount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(38, f"pivot_root: unknown system call number on {platform.machine()}")
    checked(LIBC.syscall(ctypes.c_long(number), path_bytes(new_root), path_bytes(put_old)),
           f"pivot_root into {new_root}")


def unshare(flags: int) -> None:
    checked(LIBC.unshare(ctypes.c_int(flags)), f"unshare {flags:#x}")


def setns(fd: int, nstype: int = 0) -> None:
    checked(LIBC.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def prctl(option: int, arg: int) -> None:
    checked(LIBC.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)), f"prctl {option}")


def drop_bounding(names: tuple[str, ...]) -> None:
    """Remove capabilities from the bounding set: no process started afterwards (set-uid
    programs included) can ever hold them."""
    for name in names:
        try:
            prctl(PR_CAPBSET_DROP, CAPABILITIES[name])
        except OSError as exc:
            if exc.errno != 22:  # EINVAL: a capability this kernel does not know
                raise


DROPPED_CAPABILITIES = ("CAP_MKNOD", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_BOOT",
                        "CAP_SYS_TIME", "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_SYSLOG",
                        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_CONTROL",
                        "CAP_AUDIT_READ", "CAP_BPF", "CAP_PERFMON", "CAP_SYS_PACCT",
                        "CAP_SYS_TTY_CONFIG")
"""Removed from the bounding set of every process of the Upgrade Side."""
