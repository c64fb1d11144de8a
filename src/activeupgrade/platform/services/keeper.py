"""The keeper: one small process per supervised service that holds its listening sockets.

A keeper is started by the daemon (``launch``) as ``python -m
activeupgrade.platform.services.keeper CONFIG_JSON``; it detaches (double fork, new session)
so that neither a crash nor a SIGKILL of the daemon stops it. It:

- creates and holds the service's listening sockets for its whole life;
- hands them to the application in the way it expects (``handover``): at fds 3.. with
  ``LISTEN_FDS``, ``LISTEN_PID`` (the application's own pid, set between fork and exec) and
  ``LISTEN_FDNAMES``; or at fds 3.. with ``NGINX="3;4;"`` in non-blocking mode; or not at
  all, relaying each connection to the daemon's private upstream (``proxy.py``);
- starts the application in its own session, stdout/stderr appended to the service's log;
  during an overlap switchover a second one beside it (``start`` with ``overlap``, then
  ``retire`` or ``rollback``);
- stops it with the stop signal, a grace period, then SIGKILL of its process group;
- bounds the waits: once no application served for ``hold_limit`` seconds, queued clients
  are accepted and closed instead of hanging;
- answers JSON-line commands on a Unix control socket: ``status``, ``start``, ``stop``,
  ``retire``, ``rollback``, ``open``, ``shutdown``.

Because the sockets stay open while the application is replaced, clients connecting during
a merge wait in the accept queue (or in the relay) instead of being refused.

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
import select
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
from activeupgrade.platform.services.proxy import Relay
from activeupgrade.platform.services.sockets import open_listener, parse_listen
from activeupgrade.proc import spawn

FD_START = 3
"""First fd passed to the application (socket activation convention)."""


class Keeper:
    """The keeper's state: held sockets, the running application(s), the last exit.

    Usually one application runs (``pid``). During an overlap switchover the new version
    runs beside the old one: ``start`` with ``overlap`` moves the running one to ``old``,
    ``retire`` then stops the old ones, ``rollback`` stops the new one and makes the old one
    current again.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.name = str(config["name"])
        self.control = str(config["control"])
        self.log_path = str(config["log"])
        self.handover = str(config.get("handover", "listen-fds"))
        self.hold_limit = float(config.get("hold_limit", 30.0))
        self.readiness: dict[int, str] = {}
        """How each instance says it serves (the ``ready`` of the start that made it)."""
        self.ready: dict[int, threading.Event] = {}
        self.sockets: list[tuple[str, str, socket.socket]] = []
        self.relays: list[Relay] = []
        for s in config.get("sockets", []):
            sock = open_listener(str(s["listen"]), int(s.get("backlog", 1024)))
            if self.handover == "nginx":
                sock.setblocking(False)  # nginx's inherited sockets are non-blocking
            self.sockets.append((str(s["name"]), str(s["listen"]), sock))
            if self.handover == "proxy":
                self.relays.append(Relay(sock, str(s.get("upstream", "")), self.hold_limit))
        self.lock = threading.RLock()
        self.pid = 0
        self.old: list[int] = []
        self.started_at = 0.0
        self.argv: list[str] = []
        self.exits: dict[int, threading.Event] = {}
        self.last_exit: dict[str, Any] = {}
        self.starts = 0
        self.idle_since = time.monotonic()
        self.answered = 0
        self.stopping = threading.Event()

    # -- application ------------------------------------------------------------------
    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, user: str,
              overlap: bool = False, ready: str = "probe") -> dict[str, Any]:
        with self.lock:
            if self.pid and not overlap:
                return {"ok": True, "already": True, "pid": self.pid}
            if not argv:
                return {"ok": False, "error": "empty command"}
            ids = _user_ids(user) if user else None
            if user and ids is None:
                return {"ok": False, "error": f"unknown user {user!r}"}
            child_env = dict(env)
            fds = [] if self.handover == "proxy" else [s.fileno() for _, _, s in self.sockets]
            if self.handover == "nginx":
                child_env["NGINX"] = "".join(f"{FD_START + i};" for i in range(len(fds)))
            elif fds:
                child_env["LISTEN_FDS"] = str(len(fds))
                child_env["LISTEN_FDNAMES"] = ":".join(n for n, _, _ in self.sockets)
            notify = None
            if ready == "notify":
                notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                notify.bind(f"\0activeupgrade-notify-{os.getpid()}-{self.starts}")
                child_env["NOTIFY_SOCKET"] = "@" + notify.getsockname()[1:].decode()
            log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            started = time.time()
            self.idle_since = 0.0  # from here on the application answers held clients
            pid = os.fork()
            if pid == 0:  # the child: only exec or _exit from here
                _exec_child(argv, child_env, cwd or "/", ids, fds, log_fd, err_w,
                            listen_pid=bool(fds) and self.handover != "nginx")
            os.close(err_w)
            os.close(log_fd)
            failure = b""
            while chunk := os.read(err_r, 4096):
                failure += chunk
            os.close(err_r)
            if failure:
                os.waitpid(pid, 0)
                if notify is not None:
                    notify.close()
                if not self.pid:
                    self.idle_since = time.monotonic()
                return {"ok": False, "error": failure.decode(errors="replace")}
            if self.pid:
                self.old.append(self.pid)  # overlap: the running one retires later
            self.pid, self.started_at, self.argv = pid, started, list(argv)
            self.starts += 1
            self.exits[pid] = threading.Event()
            self.ready[pid] = threading.Event()
            self.readiness[pid] = ready
            threading.Thread(target=self._reap, args=(pid,), daemon=True).start()
            if notify is not None:
                threading.Thread(target=self._listen_notify,
                                 args=(notify, self.exits[pid], self.ready[pid], pid),
                                 daemon=True).start()
            _note(f"started {self.name} pid {pid}{' (overlap)' if self.old else ''}: "
                  f"{' '.join(argv)}")
            return {"ok": True, "already": False, "pid": pid, "started_at": started,
                    "old": list(self.old)}

    def _reap(self, pid: int) -> None:
        _, status = os.waitpid(pid, 0)
        at = time.time()
        code = os.waitstatus_to_exitcode(status)
        with self.lock:
            self.last_exit = {"pid": pid, "at": at, "returncode": code,
                              "ran": round(at - self.started_at, 3)}
            if self.pid == pid:
                self.pid = 0
                self.idle_since = time.monotonic()
            if pid in self.old:
                self.old.remove(pid)
            self.exits[pid].set()
        _note(f"{self.name} pid {pid} exited with {code}")

    def _listen_notify(self, notify: socket.socket, exited: threading.Event,
                       ready: threading.Event, pid: int) -> None:
        """sd_notify: READY=1 from this instance says it serves."""
        with notify:
            notify.settimeout(0.2)
            while not exited.is_set():
                try:
                    data = notify.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if b"READY=1" in data.split(b"\n"):
                    ready.set()
                    _note(f"{self.name} pid {pid} is ready (sd_notify)")

    def is_ready(self, pid: int) -> bool:
        """Whether instance ``pid`` says it serves (``ready``), before the health probe."""
        kind = self.readiness.get(pid, "probe")
        if kind == "notify":
            event = self.ready.get(pid)
            return event is not None and event.is_set()
        if kind == "children":
            try:
                text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
            except OSError:
                return False
            return bool(text.split())
        return True

    def _end(self, pid: int, sig: signal.Signals, grace: float) -> tuple[bool, float]:
        """Signal ``pid``'s group, SIGKILL after ``grace``; (killed, exit time)."""
        with self.lock:
            done = self.exits.get(pid)
        if done is None:
            return False, time.time()
        _killpg(pid, sig)
        killed = False
        if not done.wait(max(0.0, grace)):
            killed = True
            _killpg(pid, signal.SIGKILL)
            done.wait(30)
        # Leftovers of the application's group must not keep serving old code.
        _killpg(pid, signal.SIGKILL)
        with self.lock:
            at = float(self.last_exit.get("at") or time.time()) if \
                self.last_exit.get("pid") == pid else time.time()
            self.exits.pop(pid, None)
            self.ready.pop(pid, None)
            self.readiness.pop(pid, None)
        return killed, at

    def _hold(self, grace: float) -> None:
        """Proxy handover: new connections wait; relayed ones finish before the stop."""
        for relay in self.relays:
            left = relay.hold(grace)
            if left:
                _note(f"{self.name}: {left} relayed connection(s) still open after {grace}s")

    def stop(self, sig_name: str, grace: float) -> dict[str, Any]:
        with self.lock:
            pids = [*self.old, self.pid] if self.pid else list(self.old)
        if not pids:
            return {"ok": True, "already": True, "last_exit": self.last_exit}
        began = time.time()
        self._hold(grace)
        sig = _signal(sig_name)
        results = [self._end(pid, sig, grace) for pid in pids]
        with self.lock:
            last = dict(self.last_exit)
        return {"ok": True, "already": False, "pid": pids[-1], "signal_at": began,
                "killed": any(k for k, _ in results), "exited_at": results[-1][1],
                "last_exit": last}

    def retire(self, sig_name: str, grace: float) -> dict[str, Any]:
        """Overlap: the new version serves; the old ones get the stop signal and finish."""
        with self.lock:
            pids = list(self.old)
        began = time.time()
        results = [self._end(pid, _signal(sig_name), grace) for pid in pids]
        return {"ok": True, "retired": pids, "signal_at": began,
                "killed": any(k for k, _ in results),
                "exited_at": max((at for _, at in results), default=began)}

    def rollback(self, sig_name: str, grace: float) -> dict[str, Any]:
        """Overlap: the new version is not wanted; stop it, the old one is current again."""
        with self.lock:
            new, old = self.pid, list(self.old)
        killed = False
        if new:
            killed, _ = self._end(new, _signal(sig_name), grace)
        with self.lock:
            if self.old and not self.pid:
                self.pid = self.old.pop()
                self.idle_since = 0.0
        return {"ok": True, "stopped": new, "pid": self.pid, "killed": killed,
                "kept": old}

    def open(self) -> dict[str, Any]:
        """Proxy handover: the application is healthy, relay connections to it."""
        for relay in self.relays:
            relay.open()
        return {"ok": True, "open": bool(self.relays)}

    def guard(self) -> None:
        """Bounded waits: while no application has served for ``hold_limit`` seconds,
        connections queued in the held sockets are accepted and closed (an answer)."""
        while not self.stopping.wait(0.05):
            if self.relays or not self.sockets:
                return  # the relays bound their own waits
            with self.lock:
                idle = self.idle_since
                serving = self.pid or self.old  # an old instance on its way out serves too
                if serving or not idle or time.monotonic() - idle < self.hold_limit:
                    continue
                for _, _, sock in self.sockets:
                    self._answer_queued(sock)

    def _answer_queued(self, sock: socket.socket) -> None:
        while select.select([sock], [], [], 0)[0]:
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            with contextlib.suppress(OSError):
                conn.close()
            self.answered += 1

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {
                "ok": True,
                "name": self.name,
                "keeper_pid": os.getpid(),
                "pid": self.pid,
                "old": list(self.old),
                "running": bool(self.pid),
                "ready": bool(self.pid) and self.is_ready(self.pid),
                "started_at": self.started_at if self.pid else 0.0,
                "argv": self.argv,
                "starts": self.starts,
                "last_exit": self.last_exit,
                "log": self.log_path,
                "handover": self.handover,
                "hold_limit": self.hold_limit,
                "answered_after_limit": self.answered + sum(
                    r.waited_out for r in self.relays),
                "relays": [r.status() for r in self.relays],
                "sockets": [
                    {"name": n, "listen": listen, "fd": FD_START + i}
                    for i, (n, listen, _) in enumerate(self.sockets)
                ],
            }

    def close(self) -> None:
        for relay in self.relays:
            relay.close()
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
        sig, grace = str(req.get("signal", "SIGTERM")), float(req.get("grace", 10.0))
        if cmd == "status":
            return self.status()
        if cmd == "start":
            return self.start(
                [str(a) for a in req.get("argv", [])],
                {str(k): str(v) for k, v in dict(req.get("env", {})).items()},
                str(req.get("cwd", "")),
                str(req.get("user", "")),
                overlap=bool(req.get("overlap", False)),
                ready=str(req.get("ready", "probe")),
            )
        if cmd == "stop":
            return self.stop(sig, grace)
        if cmd == "retire":
            return self.retire(sig, grace)
        if cmd == "rollback":
            return self.rollback(sig, grace)
        if cmd == "open":
            return self.open()
        if cmd == "shutdown":
            result = self.stop(sig, grace)
            self.stopping.set()
            return result
        return {"ok": False, "error": f"unknown command {cmd!r}"}


def _exec_child(
    argv: Sequence[str], env: dict[str, str], cwd: str, ids: tuple[int, int, str] | None,
    fds: list[int], log_fd: int, err_w: int, *, listen_pid: bool,
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
        if listen_pid:
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
    for relay in keeper.relays:
        relay.start()
    threading.Thread(target=keeper.guard, daemon=True, name="guard").start()
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
