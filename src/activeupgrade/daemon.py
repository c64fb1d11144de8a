"""The daemon: holds the engine for one instance and serves the API on its Unix socket.

It is the composition layer: the API (``api/``) reaches it only through
``api.server.DaemonHandle``, and the web console (``ui/web``) is opened from here when the
API asks for it, so neither the API nor the engine imports a console.

Under systemd (the packaged ``activeupgrade.service``, ``Type=notify``) it tells the
service manager ``READY=1`` once the API socket listens and ``STOPPING=1`` when it stops;
every activity log entry also goes to the journal with its fields (``AU_EVENT``,
``AU_SESSION``, ``AU_REQUEST``, …) when there is a journal.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from activeupgrade.activity import ActivityLog
from activeupgrade.bus import Bus, Event, EventKind
from activeupgrade.engine.engine import MAX_ATTEMPTS, Engine
from activeupgrade.errors import AUError
from activeupgrade.instance import EngineLock, Instance, unix_path
from activeupgrade.model.states import OperatorAction, Severity
from activeupgrade.platform.actions import groups as action_groups
from activeupgrade.platform.services import recovery, supervisor
from activeupgrade.platform.volumes import registry as volume_registry
from activeupgrade.session.host import HostPlatform
from activeupgrade.store.db import Store
from activeupgrade.systemd import Journal, field_name, notify

PRIORITY = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3, "critical": 2}
"""syslog priority of each activity log severity (the journal's PRIORITY field)."""
CONFIRM_POLL = 0.5
"""Seconds between the daemon's looks at the confirmation window after merge."""
DETAIL_FIELDS = 24
"""Scalar details of an entry sent as journal fields of their own (all are in AU_DETAILS)."""


def journal_fields(entry: dict[str, Any], home: str) -> dict[str, str]:
    """An activity log entry (its API document) as journal fields."""
    fields = {
        "MESSAGE": str(entry.get("message", "")),
        "PRIORITY": str(PRIORITY.get(str(entry.get("severity")), 6)),
        "AU_EVENT": str(entry.get("event", "")), "AU_SEVERITY": str(entry.get("severity", "")),
        "AU_ENTRY": str(entry.get("id", "")), "AU_HOME": home,
    }
    for key in ("parent", "session", "side", "state", "request"):
        if entry.get(key) not in (None, ""):
            fields[f"AU_{key.upper()}"] = str(entry[key])
    details = entry.get("details") or {}
    if details:
        fields["AU_DETAILS"] = json.dumps(details, default=str, sort_keys=True)
    scalars = [(k, v) for k, v in details.items() if isinstance(v, str | int | float | bool)]
    for key, value in scalars[:DETAIL_FIELDS]:
        fields.setdefault(f"AU_DETAIL_{field_name(key)}"[:64], str(value))
    return fields


class Daemon:
    """Everything the API's handlers reach through ``request.app.state.daemon``."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.lock = EngineLock(instance)
        self.lock.acquire()
        self.store = Store(instance.db)
        self.bus = Bus()
        self.platform: HostPlatform = HostPlatform(instance, self.store)
        self.engine = Engine(instance, self.store, self.bus, self.platform)
        self.log: ActivityLog = self.engine.log
        self.stopping = threading.Event()
        self.servers: list[Any] = []
        """uvicorn servers of this daemon: the Unix socket first, then any TCP listener."""
        self.web_listeners: dict[tuple[str, int], Any] = {}
        """The web console's open TCP listeners, by address."""
        self.journal = Journal()
        self._unsubscribe = self.bus.subscribe(self._to_journal)

    def _to_journal(self, event: Event) -> None:
        if event.kind is EventKind.LOG:
            self.journal.send(journal_fields(event.data, str(self.instance.home)))

    def start(self) -> None:
        # Actions that outlived a crash of the daemon are killed before the interrupted
        # request is shown as Broken: a Retry must not run a second copy beside them.
        leftovers = action_groups.kill_leftovers(self.store)
        self.engine.recover()
        archived = self.log.rotate()
        node = self.log.write(
            "daemon.start", f"daemon started (pid {os.getpid()})", severity=Severity.INFO,
            details={"home": str(self.instance.home),
                     "archived_log": str(archived) if archived else ""},
        )
        for line in leftovers:
            self.log.write("action.leftover", line, parent=node, severity=Severity.WARNING)
        # After a reboot the live paths are plain folders again: show the right replicas
        # before anything (an application, a session step) looks at them.
        attached, failed = volume_registry.reattach(self.store)
        for line in attached:
            self.log.write("volume.reattach", line, parent=node, severity=Severity.NOTICE)
        for line in failed:
            self.log.write("volume.reattach.error", line, parent=node, severity=Severity.ERROR)
        # Applications never depend on the daemon: their keepers are found and re-adopted.
        for name, verdict in supervisor.adopt_all(self.instance, self.store).items():
            self.log.write(
                "service.adopt", f"service {name}: {verdict}", parent=node,
                severity=Severity.INFO if verdict != "gone" else Severity.WARNING,
            )
        # A merge or abort interrupted by a crash may have left applications stopped:
        # resumed at once, without an operator (services/recovery.py).
        status = self.engine.status()
        if recovery.should_resume(status, self.store, MAX_ATTEMPTS):
            self.log.write(
                "engine.resume", f"{status.request} was interrupted by a crash ({status.reason}):"
                " resumed automatically so that the applications serve again", parent=node,
                severity=Severity.WARNING, details={"request": status.request.value,
                                                    "step": status.step})
            self.engine.submit(OperatorAction.RETRY)
        # The confirmation window after merge is watched for the daemon's lifetime; a
        # deadline that passed while the daemon was down aborts at the first look.
        threading.Thread(target=self._watch_confirmation, name="au-confirm-window",
                         daemon=True).start()

    def _watch_confirmation(self) -> None:
        while not self.stopping.is_set():
            try:
                self.engine.expire_confirmation()
            except AUError as exc:
                self.log.write("merge.confirm.error", f"the automatic abort after the "
                               f"confirmation window could not start: {exc.message}",
                               severity=Severity.ERROR, details=exc.to_dict())
                self.stopping.wait(10.0)
            self.stopping.wait(CONFIRM_POLL)

    async def open_web_console(self, listen: str, remote: bool) -> dict[str, Any]:
        """Open (or find) the web console's TCP listener (``au web``)."""
        from activeupgrade.ui.web.listener import open_listener  # the console is optional

        return await open_listener(self, self.web_listeners, listen, remote)

    def close(self) -> None:
        self.stopping.set()
        self._unsubscribe()
        self.journal.close()
        self.store.close()
        self.lock.release()


def _daemon_server(config: Any) -> Any:
    """The API's uvicorn server: SIGTERM or SIGINT end ``serve()`` and the daemon then logs
    its stop and tells systemd (uvicorn itself would raise the signal again once it has
    shut down, and the process would die before)."""
    import contextlib
    from collections.abc import Iterator

    import uvicorn

    class DaemonServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()

    return DaemonServer(config)


def serve(instance: Instance) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT."""
    import asyncio
    import socket

    import uvicorn

    from activeupgrade.api.server import build_app

    daemon = Daemon(instance)
    daemon.start()
    app = build_app(daemon)
    path = instance.socket
    if path.exists() or path.is_symlink():
        path.unlink()
    # Bind the socket ourselves so it is 0600 from the start (root-only when run as root);
    # uvicorn would make a socket it binds itself world-writable.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(unix_path(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    config = uvicorn.Config(app, fd=sock.fileno(), log_level="warning", lifespan="off")
    server = _daemon_server(config)
    daemon.servers.append(server)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving {path}")
        await task

    try:
        asyncio.run(run())
    finally:
        notify("STOPPING=1\nSTATUS=stopping")
        for extra in daemon.servers[1:]:
            extra.should_exit = True
        daemon.stopping.set()
        daemon.log.write("daemon.stop", "daemon stopped", severity=Severity.INFO)
        # the socket first: once the instance is let go a new daemon may bind its own
        sock.close()
        if path.exists():
            path.unlink()
        daemon.close()
    return 0
