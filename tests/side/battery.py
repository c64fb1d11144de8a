"""Escape attempts, run from inside the Upgrade Side: ``python battery.py SPEC_JSON``.

Every attempt is made for real and reported as ``{"name": ..., "blocked": bool, "detail":
...}`` (one JSON list on stdout). An attempt that works is reported ``blocked: false``:
the test that runs this fails on any such line. The spec names what to attack (paths,
pids, sockets, addresses); the writes to shared-looking places are only made here, and
checked from Production by the test.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
SYS_PIDFD_OPEN = 434
SYS_INIT_MODULE = 175
results: list[dict[str, Any]] = []


def attempt(name: str) -> Callable[[Callable[[], str]], None]:
    """Run the attempt: returning is a success (the escape worked), raising is blocked."""
    def run(fn: Callable[[], str]) -> None:
        try:
            detail = fn()
        except Exception as exc:  # any refusal counts as blocked
            results.append({"name": name, "blocked": True, "detail": f"{exc}"})
        else:
            results.append({"name": name, "blocked": False, "detail": detail})
    return run


def ours(pid: int, production_cmdline: str) -> bool:
    """True when ``pid`` here is a process of the Upgrade Side, not the Production one."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            here = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True
    return not here.startswith(production_cmdline)


def main(spec: dict[str, Any]) -> None:
    token = spec["token"]
    for path in spec["write"]:
        @attempt(f"write into {path}")
        def _(path: str = path) -> str:
            target = os.path.join(path, f".escape-{token}")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"escaped\n")
            os.close(fd)
            return f"created {target}"

    for path in spec["read"]:
        @attempt(f"read {path}")
        def _(path: str = path) -> str:
            with open(path, "rb") as fh:
                return f"read {len(fh.read())} bytes"

    for path in spec["unix"]:
        @attempt(f"connect to {path}")
        def _(path: str = path) -> str:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(3)
                s.connect(path)
            return "connected"

    for pid, cmdline in spec["pids"]:
        @attempt(f"kill -0 Production pid {pid}")
        def _(pid: int = pid, cmdline: str = cmdline) -> str:
            os.kill(pid, 0)
            if ours(pid, cmdline):
                raise OSError(f"pid {pid} here is a process of the Upgrade Side")
            return "signalled"

        @attempt(f"ptrace Production pid {pid}")
        def _(pid: int = pid, cmdline: str = cmdline) -> str:
            if libc.ptrace(PTRACE_ATTACH, pid, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            libc.ptrace(PTRACE_DETACH, pid, 0, 0)
            if ours(pid, cmdline):
                raise OSError(f"pid {pid} here is a process of the Upgrade Side")
            return "attached"

        @attempt(f"pidfd_open Production pid {pid}")
        def _(pid: int = pid, cmdline: str = cmdline) -> str:
            fd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
            if fd < 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            os.close(fd)
            if ours(pid, cmdline):
                raise OSError(f"pid {pid} here is a process of the Upgrade Side")
            return "opened"

    for host, port in spec["tcp"]:
        @attempt(f"connect to {host}:{port}")
        def _(host: str = host, port: int = port) -> str:
            with socket.create_connection((host, port), timeout=3):
                return "connected"

    @attempt("add a default route via the link, then reach the host's other addresses")
    def _() -> str:
        subprocess.run(["ip", "route", "add", "default", "via", spec["link_host"]],
                       capture_output=True, timeout=10)
        reached = []
        for host, port in spec["tcp"]:
            try:
                with socket.create_connection((host, port), timeout=3):
                    reached.append(f"{host}:{port}")
            except OSError:
                pass
        if not reached:
            raise OSError("nothing reached")
        return "reached " + ", ".join(reached)

    for path in spec["unmount"]:
        for flags, how in ((0, "unmount"), (2, "lazily unmount")):
            @attempt(f"{how} {path}")
            def _(path: str = path, flags: int = flags) -> str:
                if libc.umount2(os.fsencode(path), flags) != 0:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
                return "unmounted"

    for path, secret in spec["reveal"]:
        @attempt(f"bind the folder holding {path} to see under its mask")
        def _(path: str = path, secret: str = secret) -> str:
            os.makedirs("/tmp/reveal", exist_ok=True)
            parent = os.path.dirname(path)
            if libc.mount(os.fsencode(parent), b"/tmp/reveal", None, 4096, None) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            seen = os.listdir(os.path.join("/tmp/reveal", os.path.basename(path)))
            libc.umount2(b"/tmp/reveal", 2)
            if secret not in seen:
                raise OSError(f"bound, but the mask still shows {seen}")
            return f"revealed {seen}"

    @attempt("write a host-wide sysctl")
    def _() -> str:
        with open("/proc/sys/kernel/domainname", "w") as fh:
            fh.write("escaped")
        return "written"

    @attempt("create a device node")
    def _() -> str:
        os.mknod(f"/tmp/disk-{token}", 0o600 | 0o060000, os.makedev(7, 0))
        return "created a block device node"

    for node in spec["nodes"]:
        @attempt(f"open the host device node {node}")
        def _(node: str = node) -> str:
            os.close(os.open(node, os.O_RDONLY))
            return "opened"

    @attempt("load a kernel module")
    def _() -> str:
        if libc.syscall(SYS_INIT_MODULE, None, 0, b"") != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        return "loaded"

    @attempt("change the hostname")
    def _() -> str:
        socket.sethostname("escaped")
        return "changed"

    @attempt("climb out of the root (chroot escape) to the instance folder")
    def _() -> str:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.makedirs("/tmp/climb", exist_ok=True)
                os.chroot("/tmp/climb")
                for _ in range(256):
                    os.chdir("..")
                os.chroot(".")
                code = 0 if any(os.path.exists(os.path.join(h, "state.db"))
                                for h in spec["homes"]) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise OSError("the climb ended at the Upgrade Side's own root")
        return "reached an instance folder"

    @attempt("ptrace the Upgrade Side's init (it holds the liveness socket)")
    def _() -> str:
        if libc.ptrace(PTRACE_ATTACH, 1, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        libc.ptrace(PTRACE_DETACH, 1, 0, 0)
        return "attached"

    @attempt("reopen the init's descriptors through /proc/1/fd")
    def _() -> str:
        return ", ".join(os.readlink(f"/proc/1/fd/{n}") for n in os.listdir("/proc/1/fd"))

    # Allowed inside (a mount of the side's own, writes to its copy-on-write view): the
    # test checks that Production sees none of it.
    target = spec["mount_at"]
    if libc.mount(b"escape", os.fsencode(target), b"tmpfs", 0, None) == 0:
        with open(os.path.join(target, f"mounted-{token}"), "w") as fh:
            fh.write("x")
    else:
        results.append({"name": f"mount a tmpfs on {target}", "blocked": True,
                        "detail": "refused (a mount of the side's own should work)"})
    for path in spec["shared_writes"]:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write("written on the Upgrade Side\n")
        except OSError as exc:
            results.append({"name": f"write {path}", "blocked": True,
                            "detail": f"{exc} (writes there should work inside)"})

    print(json.dumps(results))


if __name__ == "__main__":
    try:
        main(json.loads(sys.argv[1]))
    except OSError as exc:
        print(json.dumps([{"name": "battery", "blocked": False, "detail": str(exc),
                           "errno": errno.errorcode.get(exc.errno or 0, "")}]))
