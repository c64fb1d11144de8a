"""The init of the Upgrade Side (PID 1 of its PID namespace).

    python -m activeupgrade.platform.side.init SPEC.json REPORT_FD

Started by ``side/namespace.py`` (``proc.spawn``, a session of its own: it outlives a
restart of the daemon). Two processes:

- the *outer* one stays where the daemon is; it creates the PID namespace, forks the init,
  later writes the init's user namespace maps, and waits for it;
- the *init* creates its mount, UTS, IPC and network namespaces, builds the view
  (``side/build.py``) as real root, switches root into it, sets the hostname, then moves
  into a new user namespace (identity map of every uid and gid, written by the outer
  process) and a new mount namespace copied from the finished view. Copied into a less
  privileged user namespace, every mount of the view is locked: nobody inside can unmount a
  mask or a scratch to see what is under it, make a read-only mount writable or undo
  ``nodev``. Root inside keeps uid 0 (installers chown, useradd, apt's ``_apt`` sandbox
  work), but its capabilities hold only in that user namespace: no module loading, raw I/O,
  reboot or device nodes; the network, UTS and IPC namespaces belong to the host, so it
  cannot reconfigure its network or hostname either. Capabilities it has no use for are
  also removed from the bounding set.

The init then answers liveness probes on a Unix socket and reaps orphans until SIGTERM,
when it stops everything inside and exits (the kernel kills whatever is left). Progress
and failures are written as JSON lines to REPORT_FD: ``{"error": "..."}`` says exactly what
could not be built.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any

from activeupgrade.platform.side import build
from activeupgrade.platform.side import kernel as k
from activeupgrade.platform.side.kernel import DROPPED_CAPABILITIES
from activeupgrade.platform.side.layers import Layer

IDENTITY_MAP = "0 0 4294967295\n"


def _report(fd: int, **fields: Any) -> None:
    try:
        os.write(fd, (json.dumps(fields) + "\n").encode())
    except OSError:
        pass


def _serve(srv: socket.socket) -> None:
    while True:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(2)
            try:
                if conn.recv(16).startswith(b"ping"):
                    conn.sendall(b"pong\n")
            except OSError:
                pass


def _stop(signum: int, frame: FrameType | None) -> None:
    try:
        os.kill(-1, signal.SIGTERM)  # every process of this PID namespace but us
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.05)
        except ChildProcessError:
            break
    os._exit(0)


def _listen(path: str) -> socket.socket:
    """The liveness socket, bound by its name from its own folder (however deep): the
    init keeps no descriptor of a host folder once it is inside."""
    folder, name = os.path.split(path)
    here = os.open(".", os.O_PATH | os.O_DIRECTORY)
    try:
        os.chdir(folder)
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            srv.bind(name)
        finally:
            os.umask(old)
    finally:
        os.fchdir(here)
        os.close(here)
    srv.listen(8)
    return srv


def _seal() -> None:
    """Nothing inside may reach the host through the init: not dumpable (no ptrace, no
    /proc/1/fd), and its output no longer goes to the host's log file."""
    k.prctl(k.PR_SET_DUMPABLE, 0)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def build_view(spec: dict[str, Any], report: int) -> list[str]:
    """Steps 1-4 of ``side/build.py``; returns what was shown otherwise than planned."""
    base = build.leave_chroot(spec["root"])
    build.make_private()
    root = base + spec["root"] if base else spec["root"]
    scratch = base + spec["scratch"] if base else spec["scratch"]
    for fresh in ("run", "tmp"):
        build.empty(os.path.join(scratch, fresh))
    layers = [Layer.from_dict(d) for d in spec["layers"]]
    asm = build.Assembler(base, root, scratch)
    for layer in layers:
        asm.add(layer)
    build.enter_root(root)
    _report(report, stage="built", base=base, created=asm.created, notes=asm.notes)
    return asm.notes


def init_main(spec: dict[str, Any], report: int, to_outer: int, from_outer: int) -> None:
    """The init: runs as PID 1 of the new PID namespace."""
    try:
        k.unshare(k.CLONE_NEWNS | k.CLONE_NEWUTS | k.CLONE_NEWIPC | k.CLONE_NEWNET)
        srv = _listen(spec["socket"])
        build_view(spec, report)
        socket.sethostname(spec["hostname"])
        k.unshare(k.CLONE_NEWUSER)
        os.write(to_outer, b"m")
        if os.read(from_outer, 1) != b"k":
            raise build.BuildError("the user namespace's identity map was not written")
        k.unshare(k.CLONE_NEWNS)  # copied from the view: every mount now locked
        k.drop_bounding(DROPPED_CAPABILITIES)
        _seal()
    except (OSError, build.BuildError) as exc:
        _report(report, error=str(exc))
        os._exit(1)
    except Exception as exc:  # a bug: say what it was rather than dying silently
        _report(report, error=f"{type(exc).__name__}: {exc}",
                trace=traceback.format_exc()[-2000:])
        os._exit(1)
    os.close(to_outer)
    os.close(from_outer)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    threading.Thread(target=_serve, args=(srv,), daemon=True).start()
    _report(report, stage="up")
    os.close(report)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.5)


def outer_main(spec: dict[str, Any], report: int) -> int:
    """The outer process: owns the PID namespace's creation and the identity maps."""
    up_r, up_w = os.pipe()
    down_r, down_w = os.pipe()
    k.unshare(k.CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        os.close(up_r)
        os.close(down_w)
        init_main(spec, report, up_w, down_r)
        os._exit(0)
    os.close(up_w)
    os.close(down_r)
    _report(report, stage="init", pid=pid)
    if os.read(up_r, 1) == b"m":
        try:
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{pid}/{name}", "w") as fh:
                    fh.write(IDENTITY_MAP)
            os.write(down_w, b"k")
        except OSError as exc:
            _report(report, error=f"writing the user namespace's {name}: {exc.strerror}")
            os.write(down_w, b"x")
    os.close(up_r)
    os.close(down_w)
    os.close(report)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the daemon stops the init itself
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    report = int(argv[2])
    try:
        return outer_main(spec, report)
    except OSError as exc:
        _report(report, error=f"creating the PID namespace: {exc.strerror or exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
