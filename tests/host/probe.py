"""What the kernel lets a root process do where this script runs (a booted test host).

Run inside a test host with its own ``python3`` (standard library only, no shell)::

    python3 probe.py            # one JSON object: {feature: "ok" | "<why not>"}

Each check does the real thing in a throw-away child process or namespace and reports
the error the kernel gave (``EPERM`` from a seccomp filter or a missing capability,
``ENOSYS`` for an unknown system call, ...). ``tests/host/machine.py`` copies it into a
host; ``python -m tests.host probe`` prints the table; docs/testing.md lists the results.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# x86_64 numbers of the system calls glibc 2.36 has no wrapper for.
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 428, 429, 430, 431, 432
SYS_MOUNT_SETATTR = 442
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, AT_RECURSIVE = 1, os.O_CLOEXEC, 0x8000
AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_BENEATH = 0x4, 0x200
MOUNT_ATTR_RDONLY = 0x1
FSCONFIG_CMD_CREATE = 6
MS_REC, MS_PRIVATE, MS_BIND, MNT_DETACH = 0x4000, 0x40000, 0x1000, 2
FAN_CLASS_NOTIF, FAN_REPORT_FID = 0, 0x200
FAN_MARK_ADD, FAN_MARK_MOUNT, FAN_MARK_FILESYSTEM = 0x1, 0x10, 0x100
FAN_MODIFY = 0x2


class Failed(Exception):
    """A check's reason for failing, in words."""


def _err(what: str) -> Failed:
    e = ctypes.get_errno()
    return Failed(f"{what}: {errno.errorcode.get(e, e)} ({os.strerror(e)})")


def _call(what: str, rc: int) -> int:
    if rc < 0:
        raise _err(what)
    return rc


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise Failed(f"{argv[0]} exit {done.returncode}: "
                     f"{(done.stderr.strip().splitlines() or [''])[-1]}")


def in_child(body: Callable[[], None]) -> None:
    """Run ``body`` in a forked child (namespaces it enters die with it)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            body()
            msg = b"ok"
        except Failed as exc:
            msg = str(exc).encode()
        except Exception as exc:  # a check's own bug is a result too
            msg = f"{type(exc).__name__}: {exc}".encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        msg = fh.read()
    os.waitpid(pid, 0)
    if msg != b"ok":
        raise Failed(msg.decode() or "the check's child died")


def _private_mount_ns() -> None:
    _call("unshare(CLONE_NEWNS)", libc.unshare(CLONE_NEWNS))
    _call("mount --make-rprivate /", libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))


def check_unshare() -> None:
    _run(["unshare", "--fork", "--pid", "--mount", "--uts", "--net", "--ipc", "--mount-proc",
          "true"])


def check_unshare_user() -> None:
    _run(["unshare", "--user", "--map-root-user", "--mount", "true"])


def check_identity_userns() -> None:
    """A user namespace whose uid/gid maps are the identity (0..2^32-2), then a mount."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        ok = libc.unshare(CLONE_NEWUSER) == 0
        os.write(ready_w, b"1" if ok else b"0")
        os.read(go_r, 1)
        code = 0 if ok and os.getuid() == 0 and libc.unshare(CLONE_NEWNS) == 0 else 1
        os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise Failed("unshare(CLONE_NEWUSER) failed")
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w") as fh:
                fh.write("0 0 4294967295\n")
    finally:
        os.write(go_w, b"1")
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise Failed("inside the identity-mapped user namespace: not uid 0 or no mount ns")


def check_bind_mount() -> None:
    def body() -> None:
        _private_mount_ns()
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            open(os.path.join(a, "f"), "w").close()
            _call("mount --bind", libc.mount(a.encode(), b.encode(), None, MS_BIND, None))
            shown = os.path.exists(os.path.join(b, "f"))
            libc.umount2(b.encode(), MNT_DETACH)
            if not shown:
                raise Failed("bind mount shows nothing")
    in_child(body)


def _open_tree(path: str) -> int:
    return _call("open_tree", libc.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(),
                                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE))


def _move_mount(fd: int, target: str, flags: int = 0) -> None:
    """Attach the detached mount ``fd`` at ``target`` (and close ``fd``: an open one keeps
    the mount busy)."""
    try:
        _call("move_mount", libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, target.encode(),
                                         MOVE_MOUNT_F_EMPTY_PATH | flags))
    finally:
        os.close(fd)


def check_open_tree_move_mount() -> None:
    def body() -> None:
        _private_mount_ns()
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            open(os.path.join(a, "f"), "w").close()
            _move_mount(_open_tree(a), b)
            shown = os.path.exists(os.path.join(b, "f"))
            libc.umount2(b.encode(), MNT_DETACH)
            if not shown:
                raise Failed("moved mount shows nothing")
    in_child(body)


def check_move_mount_beneath() -> None:
    def body() -> None:
        _private_mount_ns()
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b, \
                tempfile.TemporaryDirectory() as c:
            open(os.path.join(a, "old"), "w").close()
            open(os.path.join(b, "new"), "w").close()
            _move_mount(_open_tree(a), c)          # c shows a
            _move_mount(_open_tree(b), c, MOVE_MOUNT_BENEATH)   # b goes under a
            _call("umount c", libc.umount2(c.encode(), 0))      # a off: b shows
            shown = os.path.exists(os.path.join(c, "new"))
            while libc.umount2(c.encode(), MNT_DETACH) == 0:
                pass
            if not shown:
                raise Failed("the mount placed beneath is not what shows after umount")
    in_child(body)


def check_mount_setattr() -> None:
    def body() -> None:
        _private_mount_ns()
        with tempfile.TemporaryDirectory() as a:
            fd = _open_tree(a)
            attr = struct.pack("QQQQ", MOUNT_ATTR_RDONLY, 0, 0, 0)
            buf = ctypes.create_string_buffer(attr, len(attr))
            _call("mount_setattr", libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH,
                                                buf, ctypes.c_size_t(len(attr))))
    in_child(body)


def check_fsopen() -> None:
    def body() -> None:
        _private_mount_ns()
        fs = _call("fsopen(tmpfs)", libc.syscall(SYS_FSOPEN, b"tmpfs", 0))
        _call("fsconfig", libc.syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0))
        mnt = _call("fsmount", libc.syscall(SYS_FSMOUNT, fs, 0, 0))
        with tempfile.TemporaryDirectory() as a:
            _move_mount(mnt, a)
            libc.umount2(a.encode(), MNT_DETACH)
    in_child(body)


def check_veth() -> None:
    def body() -> None:
        _call("unshare(CLONE_NEWNET)", libc.unshare(CLONE_NEWNET))
        _run(["ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"])
        _run(["ip", "link", "set", "probe0", "up"])
    in_child(body)


def check_veth_in_host_netns() -> None:
    _run(["ip", "link", "add", "auprobe0", "type", "veth", "peer", "name", "auprobe1"])
    _run(["ip", "link", "del", "auprobe0"])


def check_inotify() -> None:
    fd = _call("inotify_init1", libc.inotify_init1(os.O_CLOEXEC))
    try:
        _call("inotify_add_watch", libc.inotify_add_watch(fd, b"/etc", 0x2))
    finally:
        os.close(fd)


def _fanotify(mark: int) -> None:
    fd = _call("fanotify_init", libc.fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID,
                                                   os.O_RDONLY))
    try:
        _call("fanotify_mark", libc.fanotify_mark(fd, FAN_MARK_ADD | mark,
                                                  ctypes.c_uint64(FAN_MODIFY), AT_FDCWD,
                                                  b"/"))
    finally:
        os.close(fd)


def check_fanotify_mount() -> None:
    _fanotify(FAN_MARK_MOUNT)


def check_fanotify_filesystem() -> None:
    _fanotify(FAN_MARK_FILESYSTEM)


def check_open_by_handle_at() -> None:
    handle = ctypes.create_string_buffer(8 + 128)
    struct.pack_into("I", handle, 0, 128)
    mount_id = ctypes.c_int()
    _call("name_to_handle_at", libc.name_to_handle_at(AT_FDCWD, b"/etc", handle,
                                                       ctypes.byref(mount_id), 0))
    mfd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = _call("open_by_handle_at", libc.open_by_handle_at(mfd, handle, os.O_RDONLY))
        os.close(fd)
    finally:
        os.close(mfd)


def check_loop_device() -> None:
    with tempfile.NamedTemporaryFile(dir="/var/tmp") as img:
        img.truncate(1 << 20)
        done = subprocess.run(["losetup", "--find", "--show", img.name], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise Failed(f"losetup: {done.stderr.strip()}")
        _run(["losetup", "--detach", done.stdout.strip()])


def check_write_lease() -> None:
    import fcntl

    with tempfile.NamedTemporaryFile(dir="/var/tmp") as fh:
        fcntl.fcntl(fh.fileno(), fcntl.F_SETLEASE, fcntl.F_WRLCK)
        fcntl.fcntl(fh.fileno(), fcntl.F_SETLEASE, fcntl.F_UNLCK)


CHECKS: dict[str, Callable[[], None]] = {
    "unshare --pid --mount --uts --net --ipc": check_unshare,
    "unshare --user --map-root-user": check_unshare_user,
    "user namespace with an identity uid/gid map": check_identity_userns,
    "bind mount (mount(2) MS_BIND)": check_bind_mount,
    "open_tree + move_mount": check_open_tree_move_mount,
    "move_mount MOVE_MOUNT_BENEATH": check_move_mount_beneath,
    "mount_setattr": check_mount_setattr,
    "fsopen + fsmount": check_fsopen,
    "veth pair in a new network namespace": check_veth,
    "veth pair in the host's network namespace": check_veth_in_host_netns,
    "inotify": check_inotify,
    "fanotify FAN_MARK_MOUNT": check_fanotify_mount,
    "fanotify FAN_MARK_FILESYSTEM": check_fanotify_filesystem,
    "open_by_handle_at": check_open_by_handle_at,
    "loop device (losetup)": check_loop_device,
    "write lease (F_SETLEASE)": check_write_lease,
}


def main() -> int:
    out: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            out[name] = "ok"
        except Failed as exc:
            out[name] = str(exc)
        except OSError as exc:
            out[name] = f"{errno.errorcode.get(exc.errno or 0, exc.errno)} ({exc.strerror})"
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
