"""The built-in supervisor backend: talks to each service's keeper (see ``keeper.py``).

The daemon never owns the applications: it records each keeper (pid, control socket) in
the store (namespace ``services``) and, after a restart or a SIGKILL, re-adopts the running
keepers by asking them over their control sockets. A keeper that is gone is started again;
an application orphaned by a dead keeper is stopped first so its address can be rebound.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from activeupgrade import proc
from activeupgrade.config.model import Handover, ServiceSpec, Switchover
from activeupgrade.errors import KeeperGone, ServiceError
from activeupgrade.instance import Instance, unix_path
from activeupgrade.model.states import Side
from activeupgrade.platform.services import health, keeper, program
from activeupgrade.platform.services.backend import (
    Check,
    ServiceStatus,
    StartResult,
    StopResult,
)
from activeupgrade.store.db import Store

NAMESPACE = "services"
"""Store namespace of keeper records (key: service name)."""
STARTUP = "startup"
"""Store namespace of startup types per side (key: ``<side>:<service>``)."""
KEEPER_READY_TIMEOUT = 10.0


def call(control: Path, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one JSON command to a keeper and return its JSON answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(unix_path(control))
            s.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise KeeperGone(f"keeper at {control} is not running") from exc
        except OSError as exc:
            raise ServiceError(
                f"keeper at {control} did not answer: {exc}",
                hint="The keeper may be hung; `au service status` shows its pid.",
            ) from exc
    if not data:
        raise KeeperGone(f"keeper at {control} closed the connection")
    reply: dict[str, Any] = json.loads(data)
    return reply


class Supervisor:
    """The built-in supervisor backend."""

    kind = "supervisor"

    def __init__(self, instance: Instance, store: Store) -> None:
        self.instance = instance
        self.store = store

    # -- paths and records ------------------------------------------------------------
    def control_path(self, name: str) -> Path:
        return self.instance.run / "services" / f"{name}.sock"

    def log_path(self, name: str) -> Path:
        return self.instance.logs / "services" / f"{name}.log"

    def record(self, name: str) -> dict[str, Any]:
        doc = self.store.get_doc(NAMESPACE, name)
        return dict(doc) if isinstance(doc, dict) else {}

    # -- keepers ----------------------------------------------------------------------
    def keeper_status(self, spec: ServiceSpec) -> dict[str, Any] | None:
        """The keeper's status, or None when no keeper runs (re-adopting a live one)."""
        rec = self.record(spec.name)
        control = Path(rec.get("control") or self.control_path(spec.name))
        try:
            st = call(control, {"cmd": "status"})
        except KeeperGone:
            return None
        if rec.get("keeper_pid") != st.get("keeper_pid"):
            rec.update(keeper_pid=st.get("keeper_pid"), control=str(control),
                       adopted_at=time.time())
            self.store.put_doc(NAMESPACE, spec.name, rec)
        return st

    def ensure_keeper(self, spec: ServiceSpec) -> dict[str, Any]:
        """Adopt the running keeper of ``spec`` or start one; returns its status.

        A keeper made for other sockets, handover or hold limit is replaced, but only while
        no application runs under it (its sockets close for that moment)."""
        st = self.keeper_status(spec)
        if st is not None and _keeper_matches(st, spec):
            return st
        if st is not None:
            if st.get("running") or st.get("old"):
                return st  # the change applies once the application is stopped
            self.shutdown(spec)
        rec = self.record(spec.name)
        orphan = int(rec.get("app_pid", 0) or 0)
        if orphan and proc.alive(orphan):
            # The keeper died but its application still holds the sockets: stop it so a
            # new keeper can bind the addresses again.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(orphan, signal.SIGKILL)
        control = self.control_path(spec.name)
        control.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = self.log_path(spec.name)
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = {
            "name": spec.name,
            "control": str(control),
            "log": str(log),
            "handover": spec.handover.value,
            "hold_limit": spec.hold_limit,
            "sockets": [
                {"name": s.name, "listen": s.listen, "backlog": s.backlog,
                 "upstream": s.upstream} for s in spec.sockets
            ],
        }
        keeper.launch(config, proc.base_env())
        deadline = time.monotonic() + KEEPER_READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                st = call(control, {"cmd": "status"})
            except KeeperGone:
                time.sleep(0.02)
                continue
            self.store.put_doc(NAMESPACE, spec.name, {
                "keeper_pid": st["keeper_pid"], "control": str(control), "log": str(log),
                "launched_at": time.time(), "sockets": st.get("sockets", []), "app_pid": 0,
            })
            return st
        raise ServiceError(
            f"the keeper of {spec.name} did not start: {_tail(log)}",
            hint=f"Read {log}; a listening address may be in use.",
        )

    # -- Backend ----------------------------------------------------------------------
    def status(self, spec: ServiceSpec, *, probe: bool = False) -> ServiceStatus:
        st = self.keeper_status(spec)
        out = ServiceStatus(
            name=spec.name, backend=self.kind, running=False, log=str(self.log_path(spec.name)),
            enabled=self.is_enabled(spec, Side.PRODUCTION),
        )
        if st is None:
            out.detail = "no keeper (not started)"
            return out
        out.running = bool(st.get("running"))
        out.pid = int(st.get("pid") or 0)
        out.keeper_pid = int(st.get("keeper_pid") or 0)
        out.sockets = list(st.get("sockets", []))
        out.started_at = float(st.get("started_at") or 0.0)
        out.last_exit = dict(st.get("last_exit") or {})
        out.detail = "running" if out.running else "stopped (sockets held)"
        if probe and out.running:
            out.healthy, out.detail = health.probe(spec.health)
        return out

    def start(self, spec: ServiceSpec, *, check: Check | None = None,
              overlap: bool = False, started: Callable[[int], None] | None = None,
              ) -> StartResult:
        """Start (``overlap``: a second instance beside the running one) and wait until
        healthy; a proxy's relay opens once the application is healthy. ``started`` hears
        the new pid before the wait (so that a rerun after a crash finds it)."""
        _check_handover(spec)
        env = proc.base_env(dict(spec.env))
        program.trusted(spec.command, what=f"cannot start {spec.name}", env=env,
                        workdir=spec.workdir)
        began = time.time()
        self.ensure_keeper(spec)
        control = self.control_path(spec.name)
        reply = call(control, {
            "cmd": "start", "argv": list(spec.command), "cwd": spec.workdir or "/",
            "env": env, "user": spec.user, "overlap": overlap,
            "ready": spec.ready.value,
        })
        if not reply.get("ok"):
            raise ServiceError(
                f"cannot start {spec.name}: {reply.get('error', 'unknown error')}",
                hint="Check the service's command, user and working directory.",
            )
        pid = int(reply.get("pid") or 0)
        rec = self.record(spec.name)
        rec["app_pid"] = pid
        self.store.put_doc(NAMESPACE, spec.name, rec)
        if started is not None:
            started(pid)

        def alive() -> tuple[bool, str]:
            st = call(control, {"cmd": "status"})
            return int(st.get("pid") or 0) == pid, describe_exit(st.get("last_exit"))

        def ready() -> bool:
            st = call(control, {"cmd": "status"})
            return int(st.get("pid") or 0) == pid and bool(st.get("ready"))

        _, detail = health.wait_healthy(
            spec.health, spec.start_timeout, alive=alive, check=check, ready=ready,
        )
        if spec.handover is Handover.PROXY:
            call(control, {"cmd": "open"})
        return StartResult(bool(reply.get("already")), began, time.time(), pid, detail)

    def retire(self, spec: ServiceSpec) -> StopResult:
        """Overlap: the old instances get the stop signal and finish their work."""
        reply = call(self.control_path(spec.name),
                     {"cmd": "retire", "signal": spec.stop_signal, "grace": spec.stop_grace},
                     timeout=spec.stop_grace + 40)
        began = float(reply.get("signal_at") or time.time())
        return StopResult(not reply.get("retired"), began,
                          float(reply.get("exited_at") or began), bool(reply.get("killed")))

    def rollback(self, spec: ServiceSpec) -> int:
        """Overlap: stop the new instance; the old one (still serving) is current again.
        Returns the pid now current (0: none was left)."""
        reply = call(self.control_path(spec.name),
                     {"cmd": "rollback", "signal": spec.stop_signal, "grace": spec.stop_grace},
                     timeout=spec.stop_grace + 40)
        pid = int(reply.get("pid") or 0)
        rec = self.record(spec.name)
        rec["app_pid"] = pid
        self.store.put_doc(NAMESPACE, spec.name, rec)
        return pid

    def stop(self, spec: ServiceSpec) -> StopResult:
        began = time.time()
        if self.keeper_status(spec) is None:
            return StopResult(True, began, began)
        reply = call(
            self.control_path(spec.name),
            {"cmd": "stop", "signal": spec.stop_signal, "grace": spec.stop_grace},
            timeout=spec.stop_grace + 40,
        )
        last = dict(reply.get("last_exit") or {})
        if reply.get("already"):
            return StopResult(True, began, began)
        exited = float(reply.get("exited_at") or last.get("at") or time.time())
        return StopResult(False, began, exited, bool(reply.get("killed")))

    def shutdown(self, spec: ServiceSpec) -> None:
        """Stop the application and its keeper; the listening sockets close."""
        st = self.keeper_status(spec)
        if st is not None:
            with contextlib.suppress(KeeperGone):
                call(self.control_path(spec.name),
                     {"cmd": "shutdown", "signal": spec.stop_signal, "grace": spec.stop_grace},
                     timeout=spec.stop_grace + 40)
            # Return once the keeper is gone: its sockets are closed and files removed.
            end = time.monotonic() + 15
            while proc.alive(int(st.get("keeper_pid") or 0)) and time.monotonic() < end:
                time.sleep(0.02)
        self.store.delete_doc(NAMESPACE, spec.name)

    def is_enabled(self, spec: ServiceSpec, side: Side) -> bool:
        if side is Side.PRODUCTION:
            return spec.enabled  # Production's startup type is never changed
        doc = self.store.get_doc(STARTUP, f"{side.value}:{spec.name}")
        return bool(doc["enabled"]) if isinstance(doc, dict) else spec.enabled

    def set_enabled(self, spec: ServiceSpec, side: Side, enabled: bool) -> None:
        if side is Side.PRODUCTION:
            raise ServiceError("the Production Side's startup types are never changed")
        self.store.put_doc(STARTUP, f"{side.value}:{spec.name}", {"enabled": enabled})

    def restore_after_switch(self, spec: ServiceSpec, enabled: bool) -> None:
        # The upgraded software now serves: its startup type is the saved one again, which
        # is the configured one; the Upgrade Side's record is no longer needed.
        self.store.delete_doc(STARTUP, f"{Side.UPGRADE.value}:{spec.name}")


def adopt_all(instance: Instance, store: Store) -> dict[str, str]:
    """At daemon start: which recorded keepers still run (re-adopted) and which are gone."""
    found: dict[str, str] = {}
    sup = Supervisor(instance, store)
    for name, rec in store.docs(NAMESPACE).items():
        control = Path(str(rec.get("control") or sup.control_path(name)))
        try:
            st = call(control, {"cmd": "status"}, timeout=3.0)
        except ServiceError:
            found[name] = "gone"
            continue
        found[name] = f"adopted (keeper {st.get('keeper_pid')}, app pid {st.get('pid') or '-'})"
    return found


def _keeper_matches(st: dict[str, Any], spec: ServiceSpec) -> bool:
    """Whether a running keeper holds what ``spec`` asks for."""
    listens = [s.get("listen") for s in st.get("sockets", [])]
    return (listens == [s.listen for s in spec.sockets]
            and st.get("handover", Handover.LISTEN_FDS.value) == spec.handover.value
            and float(st.get("hold_limit", 30.0)) == spec.hold_limit
            and [r.get("upstream") for r in st.get("relays", [])]
            == ([s.upstream for s in spec.sockets] if spec.handover is Handover.PROXY else []))


def _check_handover(spec: ServiceSpec) -> None:
    """The combinations the keeper cannot serve, said before anything starts."""
    if spec.handover is Handover.PROXY:
        missing = [s.name for s in spec.sockets if not s.upstream]
        if missing or not spec.sockets:
            raise ServiceError(
                f"service {spec.name}: handover \"proxy\" needs an upstream on every socket "
                f"(missing: {', '.join(missing) or 'no [[service.socket]] at all'})",
                hint="Set upstream = \"127.0.0.1:PORT\" (the private address the daemon "
                "listens on) in each [[service.socket]].",
            )
        if spec.switchover is Switchover.OVERLAP:
            raise ServiceError(
                f"service {spec.name}: switchover \"overlap\" needs a shared socket; the proxy "
                "handover's daemon binds its own port",
                hint="Use switchover = \"stop-start\" with handover = \"proxy\".",
            )


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "no output"


def describe_exit(last: Any) -> str:
    """A keeper's record of the application's last exit, in words (never a Python dict in
    a reason): "pid 4127 exited with 1 after 0.09s", "… was killed by SIGKILL …"."""
    if not isinstance(last, dict) or not last.get("pid"):
        return "it has not exited yet"
    code = last.get("returncode")
    ran = last.get("ran")
    after = f" after {float(ran):.2f}s" if isinstance(ran, int | float) else ""
    if isinstance(code, int) and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"pid {last['pid']} was killed by {name}{after}"
    return f"pid {last['pid']} exited with {code}{after}"
