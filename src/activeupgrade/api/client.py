"""The one API client: the CLI, the terminal console and the demo talk to the daemon
through it.

It speaks HTTP/1.1 over the instance's Unix socket with the standard library only (a
command starts fast), turns error documents back into the same ``AUError`` classes (their
hints and exit codes survive), follows the event stream (``/events``, Server-Sent Events:
parsed here and nowhere else) and waits for the end of an operator action or a
maintenance operation by following that stream, never by polling.

``Client.for_instance(instance)`` refuses an instance that does not exist (a typo in
``AU_HOME`` never creates one); ``create=True`` is for the commands that create one on
purpose. The daemon is started when it does not run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from activeupgrade.engine.view import StatusView
from activeupgrade.errors import AUError, DaemonError, DiskFullError, InstanceError, error_from_dict
from activeupgrade.instance import Instance, unix_path
from activeupgrade.model.states import Operation, OperationalState, OperatorAction

DAEMON_ENV = ("AU_DEBUG", "AU_FAULT_PAUSE")
"""Variables of the caller's environment a daemon started by the client inherits."""
START_TIMEOUT = 20.0
"""Seconds to wait for a daemon this client started."""
TIMEOUT = 600.0
"""Seconds one request may take (the long work runs in the background, not in requests)."""

STREAM_TIMEOUT = 3600.0
"""Seconds the event stream may stay silent (the daemon sends a keep-alive every 15 s)."""

ProgressSink = Callable[[StatusView], None]
OutputSink = Callable[[str, str], None]


@dataclass(frozen=True)
class Event:
    """One event of the stream: ``kind`` (status, log, progress, output) and its data."""

    kind: str
    data: dict[str, Any]
    id: int | None = None


class _Response:
    """One HTTP/1.0 exchange over a Unix socket: the daemon closes the connection at the
    end of the answer, so the body is read to its end (an event stream line by line)."""

    def __init__(self, address: str, method: str, target: str, payload: bytes | None,
                 timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(address)
            head = [f"{method} {target} HTTP/1.0", "Host: au", "Accept: application/json"]
            if payload is not None:
                head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
            self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (payload or b""))
            self.file = self.sock.makefile("rb")
            status_line = self.file.readline(65536).decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}")
            self.status = int(parts[1])
            while self.file.readline(65536) not in (b"\r\n", b"\n", b""):
                pass  # headers: the answer is JSON (or an event stream) read to its end
        except BaseException:
            self.sock.close()
            raise

    def read(self) -> bytes:
        return self.file.read()

    def readline(self) -> bytes:
        return self.file.readline()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        self.sock.close()

    def shutdown(self) -> None:
        """End a stream being read in another thread."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class Client:
    def __init__(self, instance: Instance, *, timeout: float = TIMEOUT) -> None:
        self.instance = instance
        self.timeout = timeout
        self._streams: set[_Response] = set()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def for_instance(cls, instance: Instance, *, start: bool = True,
                     create: bool = False) -> Client:
        """A client of ``instance``'s daemon (started when ``start`` and not running).

        An instance that does not exist is refused unless ``create`` (``au init``, the
        first adopt, the demo): a typo never creates one."""
        if create and not instance.exists():
            from activeupgrade.store.db import Store  # only when creating one

            instance.ensure()
            Store(instance.db).close()
        elif not instance.exists():
            raise InstanceError(
                f"there is no instance at {instance.home}",
                hint="Check AU_HOME; create an instance with `au init` (or adopt a first "
                "volume with `au volume adopt PATH --role ROLE`).",
            )
        client = cls(instance)
        if start and not client.alive():
            client.start_daemon()
        return client

    @classmethod
    def from_env(cls, *, start: bool = True, create: bool = False) -> Client:
        return cls.for_instance(Instance.from_env(), start=start, create=create)

    # -- transport ------------------------------------------------------------------------
    def _address(self) -> str:
        try:
            return unix_path(self.instance.socket)
        except FileNotFoundError:  # no instance folder: nothing listens there either
            return str(self.instance.socket)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """One API request; the JSON answer, or the error the daemon sent (as its class)."""
        given = {k: v for k, v in (params or {}).items() if v is not None}
        target = path + ("?" + urlencode(given) if given else "")
        payload = json.dumps(body).encode() if body is not None else None
        try:
            resp = _Response(self._address(), method, target, payload, timeout or self.timeout)
        except OSError as exc:
            raise DaemonError(f"cannot reach the daemon at {self.instance.socket}: {exc}",
                              ) from exc
        try:
            raw = resp.read()
        except OSError as exc:
            raise DaemonError(f"the daemon at {self.instance.socket} did not answer: {exc}"
                              ) from exc
        finally:
            resp.close()
        return _answer(resp.status, raw)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body or {})

    def close(self) -> None:
        """End every event stream this client reads (from any thread)."""
        for resp in list(self._streams):
            resp.shutdown()

    # -- the daemon -------------------------------------------------------------------------
    def alive(self) -> bool:
        if not self.instance.socket.exists():
            return False
        try:
            self.request("GET", "/ping", timeout=10.0)
        except AUError:
            return False
        return True

    def start_daemon(self) -> None:
        """Start ``au daemon`` in the background for this instance and wait for it.

        Under systemd (as root) the daemon runs as a unit of its own, so that it outlives
        the session, unit or ssh login that ran this command (systemd would otherwise stop
        it with the caller's cgroup); only its own process is stopped with it
        (``KillMode=process``): the applications' keepers never depend on the daemon."""
        from activeupgrade import proc  # only to start one: a command's start stays short

        self.instance.ensure()
        self._room_to_start()
        log_path = self.instance.logs / "daemon.log"
        env = proc.base_env({"AU_HOME": str(self.instance.home)})
        # Only what the daemon needs of the caller's environment: its debugging switches
        # (AU_FAULT_PAUSE is the crash tests' hook), never the rest of it.
        env.update({k: v for k, v in os.environ.items() if k in DAEMON_ENV})
        argv = [sys.executable, "-m", "activeupgrade", "daemon"]
        under_systemd = os.geteuid() == 0 and os.path.isdir("/run/systemd/system")
        if under_systemd and packaged_unit(self.instance):
            # The packaged unit (Type=notify): systemctl returns once the daemon said
            # READY=1, or with the unit's failure.
            done = proc.run(["systemctl", "start", PACKAGED_UNIT], check=False, timeout=90)
            if done.returncode != 0:
                raise DaemonError(f"systemctl start {PACKAGED_UNIT} failed: "
                                  f"{done.stderr.strip()[-500:]}",
                                  hint=f"See `journalctl -u {PACKAGED_UNIT}`.")
        elif under_systemd and proc.which("systemd-run"):
            unit = daemon_unit(self.instance)
            # Another command may have started it a moment ago (or it is slow to answer):
            # a unit that runs is waited for, never started twice.
            if not self._unit_active(unit):
                proc.run(["systemctl", "reset-failed", unit], check=False, timeout=30)
                done = proc.run(
                    ["systemd-run", "--quiet", "--collect", f"--unit={unit}",
                     "--property=KillMode=process", f"--property=StandardOutput=append:"
                     f"{log_path}", f"--property=StandardError=append:{log_path}",
                     *(f"--setenv={k}={v}" for k, v in env.items()), "--", *argv],
                    check=False, timeout=60)
                if done.returncode != 0 and not self._unit_active(unit):
                    raise DaemonError(f"systemd-run failed: {done.explain()}",
                                      hint=f"See `journalctl -u {unit}` and {log_path}.")
        else:
            # The daemon outlives this command: its own session, no terminal, no stdin.
            proc.spawn(argv, env=env, log=log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.alive():
                return
            time.sleep(0.05)
        self._room_to_start()
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        raise DaemonError(
            f"the daemon did not start within {START_TIMEOUT:.0f}s",
            hint=f"See {log_path}." + (f" Last lines:\n{tail}" if tail else ""),
        )

    @staticmethod
    def _unit_active(unit: str) -> bool:
        from activeupgrade import proc

        done = proc.run(["systemctl", "is-active", "--quiet", unit], check=False, timeout=30)
        return done.returncode == 0

    def _room_to_start(self) -> None:
        """A daemon cannot open its database (nor write why to its log) on a full
        filesystem: say so at once instead of waiting for it."""
        home = self.instance.home
        try:
            free = os.statvfs(home)
        except OSError:
            return
        blocks = free.f_bfree if os.geteuid() == 0 else free.f_bavail  # root's reserve
        if blocks == 0 or (free.f_files and free.f_ffree == 0):
            raise DiskFullError(
                f"the daemon cannot start: no space left on the filesystem of {home}",
                hint=f"Free space there (`df -h {home}`), then run the command again.",
                details={"file": str(home)})

    # -- documents ------------------------------------------------------------------------
    def status(self) -> StatusView:
        return StatusView.from_dict(self.get("/status"))

    def events(self, after: int | None = None) -> Generator[Event, None, None]:
        """Follow the event stream until it closes (the first event is the status)."""
        target = "/events" + (f"?after={after}" if after is not None else "")
        try:
            resp = _Response(self._address(), "GET", target, None, STREAM_TIMEOUT)
        except OSError as exc:
            raise DaemonError(f"cannot reach the daemon at {self.instance.socket}: {exc}"
                              ) from exc
        self._streams.add(resp)
        try:
            if resp.status >= 400:
                _answer(resp.status, resp.read())
            kind, data, ev_id = "", "", None
            while True:
                raw = resp.readline()
                if not raw:
                    return
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line.startswith("id: "):
                    ev_id = int(line[4:]) if line[4:].isdigit() else None
                elif line == "" and kind:
                    yield Event(kind, json.loads(data), ev_id)
                    kind, data, ev_id = "", "", None
        except OSError as exc:
            raise DaemonError(f"the event stream closed: {exc}") from exc
        finally:
            self._streams.discard(resp)
            resp.close()

    # -- operator actions and operations --------------------------------------------------
    def act(self, action: OperatorAction, *, config: str | None = None, force: bool = False,
            wait: bool = True, on_progress: ProgressSink | None = None,
            keep_data: bool = False) -> StatusView:
        """Submit an operator action; unless ``wait`` is false, follow it to its end.

        A refused action raises StateError (naming the allowed ones); a request that ends
        Broken — or a check that failed — raises the error that broke it, with its class,
        hint and exit code."""
        body: dict[str, Any] = {"force": force}
        if keep_data:
            body["keep_data"] = True
        if config is not None:
            body["config"] = config
        stream = self.events() if wait else None
        try:
            if stream is not None:
                next(stream)  # subscribed before submitting: no event can be missed
            status = StatusView.from_dict(self.post(f"/actions/{action.value}", body))
            if stream is None:
                return status
            status = _follow_action(stream, status, action, on_progress)
        finally:
            if stream is not None:
                stream.close()
        return _ended(action, status)

    def follow(self, action: OperatorAction, *,
               on_progress: ProgressSink | None = None) -> StatusView:
        """Follow the running ``action`` (already submitted, e.g. before an interruption)
        to its end, as ``act`` does."""
        stream = self.events()
        try:
            first = StatusView.from_dict(next(stream).data)
            status = _follow_action(stream, first, action, on_progress)
        finally:
            stream.close()
        return _ended(action, status)

    def operate(self, operation: Operation, args: dict[str, Any] | None = None, *,
                on_output: OutputSink | None = None,
                on_progress: ProgressSink | None = None,
                on_start: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Run a maintenance operation to its end; its result, or its error raised.
        ``on_start`` is given the operation's id once it is submitted (to follow it again
        with ``follow_operation`` after an interruption)."""
        stream = self.events()
        try:
            next(stream)
            rec = self.post(f"/operations/{operation.value}", {"args": args or {}})
            op_id = str(rec["id"])
            if on_start is not None:
                on_start(op_id)
            self._follow_operation(stream, op_id, on_output, on_progress)
        finally:
            stream.close()
        return self._operation_result(op_id)

    def follow_operation(self, op_id: str, *, on_output: OutputSink | None = None,
                         on_progress: ProgressSink | None = None) -> dict[str, Any]:
        """Follow operation ``op_id`` (already submitted) to its end, as ``operate``."""
        stream = self.events()
        try:
            first = next(stream)
            view = StatusView.from_dict(first.data)
            if (view.operation or {}).get("id") == op_id:
                self._follow_operation(stream, op_id, on_output, on_progress)
        finally:
            stream.close()
        return self._operation_result(op_id)

    def cancel(self, reason: str = "the operator cancelled it") -> StatusView:
        """Cancel the running maintenance operation or readiness check."""
        return StatusView.from_dict(self.post("/cancel", {"reason": reason}))

    def _follow_operation(self, stream: Iterator[Event], op_id: str,
                          on_output: OutputSink | None,
                          on_progress: ProgressSink | None) -> None:
        view: StatusView | None = None
        for ev in stream:
            if ev.kind == "output" and ev.data.get("run") == op_id and on_output:
                on_output(str(ev.data.get("stream")), str(ev.data.get("line")))
            elif ev.kind == "status":
                fresh = StatusView.from_dict(ev.data)
                last = fresh.last_operation or {}
                if fresh.operation is None and last.get("id") == op_id:
                    return
                # A status event carries no progress: keep the last one shown.
                view = fresh if view is None else dataclasses.replace(
                    fresh, progress=view.progress)
                if on_progress is not None:
                    on_progress(view)
            elif ev.kind == "progress" and on_progress is not None:
                view = (view or self.status()).with_progress(ev.data)
                on_progress(view)

    def _operation_result(self, op_id: str) -> dict[str, Any]:
        done: dict[str, Any] = self.get(f"/operations/{op_id}")
        if done.get("error"):
            raise error_from_dict(done["error"])
        result: dict[str, Any] = done.get("result") or {}
        return result


PACKAGED_UNIT = "activeupgrade.service"
"""The Debian package's unit: the daemon of the host's instance (``/var/lib/activeupgrade``)."""
PACKAGED_HOME = "/var/lib/activeupgrade"
UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")


def packaged_unit(instance: Instance) -> bool:
    """Whether ``instance`` is the one the installed ``activeupgrade.service`` runs."""
    if os.path.realpath(instance.home) != PACKAGED_HOME:
        return False
    return any(os.path.exists(os.path.join(d, PACKAGED_UNIT)) for d in UNIT_DIRS)


def daemon_unit(instance: Instance) -> str:
    """The systemd unit a daemon started by the CLI runs as (one per instance folder)."""
    import hashlib

    tag = hashlib.sha1(str(instance.home).encode()).hexdigest()[:10]
    return f"activeupgrade-daemon-{tag}.service"


def _answer(status: int, raw: bytes) -> Any:
    if status >= 400:
        try:
            data = json.loads(raw)
        except ValueError:
            raise DaemonError(f"daemon answered {status}: {raw[:300]!r}") from None
        if isinstance(data, dict) and "message" in data:
            raise error_from_dict(data)
        raise DaemonError(f"daemon answered {status}: {data}")
    if not raw:
        return None
    return json.loads(raw)


def _follow_action(stream: Iterator[Event], first: StatusView, action: OperatorAction,
                   on_progress: ProgressSink | None) -> StatusView:
    """Read the stream until ``action`` has ended (an abort asked for while a request ran:
    until the abort itself has ended)."""

    def done(st: StatusView) -> bool:
        if st.operational_state is OperationalState.BUSY:
            return False
        return action is not OperatorAction.ABORT or st.action is OperatorAction.ABORT

    status = first
    while not done(status):
        if on_progress is not None:
            on_progress(status)
        ev = next(stream, None)
        if ev is None:
            raise DaemonError("the event stream closed before the request ended",
                              hint="`au status` shows where it is; it goes on in the daemon.")
        if ev.kind == "status":
            # A status event carries no progress: keep the last one shown.
            fresh = StatusView.from_dict(ev.data)
            status = dataclasses.replace(fresh, progress=status.progress) if (
                fresh.busy and not fresh.progress.step) else fresh
        elif ev.kind == "progress":
            status = status.with_progress(ev.data)
    return status


def _ended(action: OperatorAction, status: StatusView) -> StatusView:
    if status.error and (status.operational_state is OperationalState.BROKEN or (
            action is OperatorAction.CHECK)):
        raise broken_error(status)
    return status


def broken_error(status: StatusView) -> AUError:
    """The error a Broken request (or a failed check) carries, ready to raise: its own
    class, message, hint and exit code, said as the request's failure."""
    doc = dict(status.error or {})
    err = error_from_dict(doc)
    step = str(doc.get("step") or status.step)
    broken = status.operational_state is OperationalState.BROKEN
    allowed = status.allowed_actions
    err.message = (f"{status.request} is Broken at step {step}: {err.message}" if broken
                   else f"{status.request} failed: {err.message}")
    then = ("then `au retry`" + (" or `au abort`" if "abort" in allowed else "")
            if broken else "then run it again")
    err.hint = (err.hint + " " if err.hint else "") + f"Fix the cause, {then}."
    err.details = {**err.details, "status": status.to_dict()}
    return err


__all__ = ["AUError", "Client", "Event", "broken_error"]
