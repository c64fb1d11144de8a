"""The keeper: one small process per supervised service that holds its listening sockets.

A keeper is started by the daemon (``launch``) as ``python -m
activeupgrade.platform.services.keeper CONFIG_JSON``; it detaches (double fork, new session)
so that neither a crash nor a SIGKILL of the daemon stops it. It:

- creates and holds the service's listening sockets for its whole life;
- starts the application with those sockets at fds 3.. and ``LISTEN_FDS``, ``LISTEN_PID``
  (the application's own pid, set between fork and exec), ``LISTEN_FDNAMES``, in its own
  session, with stdout/stderr appended to the service's log file;
- stops it with the stop signal, a grace period, then SIGKILL of its process group;
- answers JSON-line commands on a Unix control socket: ``status``, ``start``, ``stop``,
  ``shutdown``.

Because the sockets stay open while the application is replaced, clients connecting during
a merge wait in the accept queue instead of being refused.

This is the one module of the services part that starts long-lived processes itself:
``proc.spawn`` (argv list, new session) for the keeper, ``os.fork``/``os.execvpe`` for the
application (``LISTEN_PID`` must be known in the child before exec).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from activeupgrade.instance import unix_path
from activeupgrade.platform.services.sockets import open_listener, parse_listen
from activeupgrade.proc import spawn

FD_START = 3
"""First fd passed to the application (socket activation convention)."""


class Keeper:
    """The keeper's state: held sockets, the running application, its last exit."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.name = str(config["name"])
        self.control = str(config["control"])
        self.log_path = str(config["log"])
        self.sockets: list[tuple[str, str, socket.socket]] = []
        for s in config.get("sockets", []):
            sock = open_listener(str(s["listen"]), int(s.get("backlog", 1024)))
            self.sockets.append((str(s["name"]), str(s["listen"]), sock))
        self.lock = threading.RLock()
        self.pid = 0
        self.started_at = 0.0
        self.argv: list[str] = []
        self.exited = threading.Event()
        self.exited.set()
        self.last_exit: dict[str, Any] = {}
        self.starts = 0
        self.stopping = threading.Event()

    # -- application ------------------------------------------------------------------
    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, user: str) -> dict[
        str, Any
    ]:
        with self.lock:
            if self.pid:
                return {"ok": True, "already": True, "pid": self.pid}
            if not argv:
                return {"ok": False, "error": "empty command"}
            ids = _user_ids(user) if user else None
            if user and ids is None:
                return {"ok": False, "error": f"unknown user {user!r}"}
            child_env = dict(env)
            child_env["LISTEN_FDS"] = str(len(self.sockets))
            child_env["LISTEN_FDNAMES"] = ":".join(n for n, _, _ in self.sockets)
            log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            fds = [s.fileno() for _, _, s in self.sockets]
            started = time.time()
            pid = os.fork()
            if pid == 0:  # the child: only exec or _exit from here
                _exec_child(argv, child_env, cwd or "/", ids, fds, log_fd, err_w)
            os.close(err_w)
            os.close(log_fd)
            failure = b""
            while chunk := os.read(err_r, 4096):
                failure += chunk
            os.close(err_r)
            if failure:
                os.waitpid(pid, 0)
                return {"ok": False, "error": failure.decode(errors="replace")}
            self.pid, self.started_at, self.argv = pid, started, list(argv)
            self.starts += 1
            self.exited.clear()
            threading.Thread(target=self._reap, args=(pid,), daemon=True).start()
            _note(f"started {self.name} pid {pid}: {' '.join(argv)}")
            return {"ok": True, "already": False, "pid": pid, "started_at": started}

    def _reap(self, pid: int) -> None:
        _, status = os.waitpid(pid, 0)
        at = time.time()
        code = os.waitstatus_to_exitcode(status)
        with self.lock:
            self.last_exit = {"pid": pid, "at": at, "returncode": code,
                              "ran": round(at - self.started_at, 3)}
            if self.pid == pid:
                self.pid = 0
            self.exited.set()
        _note(f"{self.name} pid {pid} exited with {code}")

    def stop(self, sig_name: str, grace: float) -> dict[str, Any]:
        with self.lock:
            pid = self.pid
        if not pid:
            return {"ok": True, "already": True, "last_exit": self.last_exit}
        began = time.time()
        sig = _signal(sig_name)
        _killpg(pid, sig)
        killed = False
        if not self.exited.wait(max(0.0, grace)):
            killed = True
            _killpg(pid, signal.SIGKILL)
            self.exited.wait(30)
        # Leftovers of the application's group must not keep serving old code.
        _killpg(pid, signal.SIGKILL)
        with self.lock:
            last = dict(self.last_exit)
        return {"ok": True, "already": False, "pid": pid, "signal_at": began,
                "killed": killed, "last_exit": last}

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {
                "ok": True,
                "name": self.name,
                "keeper_pid": os.getpid(),
                "pid": self.pid,
                "running": bool(self.pid),
                "started_at": self.started_at if self.pid else 0.0,
                "argv": self.argv,
                "starts": self.starts,
                "last_exit": self.last_exit,
                "log": self.log_path,
                "sockets": [
                    {"name": n, "listen": listen, "fd": FD_START + i}
                    for i, (n, listen, _) in enumerate(self.sockets)
                ],
            }

    def close(self) -> None:
        for _, listen, sock in self.sockets:
            sock.close()
            addr = parse_listen(listen)
            if addr.is_unix:
                with contextlib.suppress(OSError):
                    os.unlink(addr.path)
        with contextlib.suppress(OSError):
            os.unlink(self.control)

    # -- commands ---------------------------------------------------------------------
    def handle(self, req: Mapping[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "start":
            return self.start(
                [str(a) for a in req.get("argv", [])],
                {str(k): str(v) for k, v in dict(req.get("env", {})).items()},
                str(req.get("cwd", "")),
                str(req.get("user", "")),
            )
        if cmd == "stop":
            return self.stop(str(req.get("signal", "SIGTERM")), float(req.get("grace", 10.0)))
        if cmd == "shutdown":
            result = self.stop(str(req.get("signal", "SIGTERM")), float(req.get("grace", 10.0)))
            self.stopping.set()
            return result
        return {"ok": False, "error": f"unknown command {cmd!r}"}


def _exec_child(
    argv: Sequence[str], env: dict[str, str], cwd: str, ids: tuple[int, int, str] | None,
    fds: list[int], log_fd: int, err_w: int,
) -> None:
    """In the forked child: new session, fds at 3.., output to the log, user, exec."""
    try:
        os.setsid()
        # Keep the error pipe above the range closed below (it closes itself on exec).
        err_w = fcntl.fcntl(err_w, fcntl.F_DUPFD_CLOEXEC, 1000)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 512 + i) for i, fd in enumerate(fds)]
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        for i, fd in enumerate(high):
            os.dup2(fd, FD_START + i)  # dup2 makes the target inheritable
        os.closerange(FD_START + len(fds), 512)
        for fd in high:
            os.close(fd)
        if ids is not None:
            uid, gid, name = ids
            os.setgid(gid)
            os.initgroups(name, gid)
            os.setuid(uid)
        os.chdir(cwd)
        env["LISTEN_PID"] = str(os.getpid())
        os.execvpe(argv[0], list(argv), env)
    except BaseException as exc:  # report to the keeper through the CLOEXEC pipe
        with contextlib.suppress(OSError):
            os.write(err_w, f"cannot start {argv[0]}: {exc}".encode())
    os._exit(127)


def _user_ids(user: str) -> tuple[int, int, str] | None:
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid, pw.pw_name


def _signal(name: str) -> signal.Signals:
    text = name.upper()
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        return signal.SIGTERM


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _note(text: str) -> None:
    print(f"[keeper {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class _Handler(socketserver.StreamRequestHandler):
    keeper: Keeper

    def handle(self) -> None:
        line = self.rfile.readline()
        try:
            req = json.loads(line)
            reply = self.keeper.handle(req) if isinstance(req, dict) else {"ok": False}
        except Exception as exc:  # never let one bad command kill the keeper
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


def serve(config: Mapping[str, Any]) -> int:
    """Run a keeper in this process until ``shutdown``."""
    keeper = Keeper(config)
    control = keeper.control
    with contextlib.suppress(FileNotFoundError):
        os.unlink(control)
    handler = type("Handler", (_Handler,), {"keeper": keeper})
    old_umask = os.umask(0o077)
    server = socketserver.ThreadingUnixStreamServer(unix_path(control), handler)
    os.umask(old_umask)
    server.daemon_threads = True
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: keeper.stopping.set())
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    _note(f"keeper for {keeper.name} ready on {control}")
    keeper.stopping.wait()
    keeper.stop("SIGTERM", 10.0)
    server.shutdown()
    server.server_close()
    keeper.close()
    _note(f"keeper for {keeper.name} shut down")
    return 0


def launch(config: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """Start a detached keeper (returns once the intermediate process has exited)."""
    Path(str(config["log"])).parent.mkdir(parents=True, exist_ok=True)
    proc = spawn(
        [sys.executable, "-m", "activeupgrade.platform.services.keeper", json.dumps(config)],
        env=env, log=str(config["log"]),
    )
    proc.wait(30)


def main(argv: Sequence[str]) -> int:
    config = json.loads(argv[0])
    # Detach: the intermediate exits so the keeper is nobody's child but init's.
    if os.fork() != 0:
        os._exit(0)
    os.chdir("/")  # never pin the daemon's folder (it may be a volume to unmount)
    try:
        return serve(config)
    except Exception as exc:
        _note(f"keeper for {config.get('name')} failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
