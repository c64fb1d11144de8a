"""The API client used by the CLI and the terminal console.

``Client.from_env()`` talks to the daemon of the instance named by ``AU_HOME`` and starts
the daemon when it is not running. Errors sent by the daemon come back as the same
``AUError`` subclasses.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from activeupgrade import proc
from activeupgrade.errors import AUError, DaemonError, error_from_dict
from activeupgrade.instance import Instance, unix_path

START_TIMEOUT = 20.0


class Client:
    def __init__(self, instance: Instance, http: httpx.Client) -> None:
        self.instance = instance
        self.http = http

    @classmethod
    def for_instance(cls, instance: Instance, *, start: bool = True) -> Client:
        if start:
            instance.ensure()  # the socket's folder must exist to name a deep socket
        try:
            uds = unix_path(instance.socket)
        except FileNotFoundError:  # no instance yet: nothing listens there either
            uds = str(instance.socket)
        transport = httpx.HTTPTransport(uds=uds)
        client = cls(instance, httpx.Client(transport=transport, base_url="http://au",
                                            timeout=httpx.Timeout(600.0, connect=5.0)))
        if start and not client.alive():
            client.start_daemon()
        return client

    @classmethod
    def from_env(cls, *, start: bool = True) -> Client:
        return cls.for_instance(Instance.from_env(), start=start)

    def alive(self) -> bool:
        if not self.instance.socket.exists():
            return False
        try:
            self.http.get("/status", timeout=10.0)
        except httpx.TransportError:
            return False
        return True

    def start_daemon(self) -> None:
        """Start ``au daemon`` in the background for this instance and wait for its socket."""
        self.instance.ensure()
        log_path = self.instance.logs / "daemon.log"
        env = dict(os.environ)
        env["AU_HOME"] = str(self.instance.home)
        # The daemon outlives this command: its own session, no terminal, no stdin.
        proc.spawn([sys.executable, "-m", "activeupgrade", "daemon"], env=env, log=log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.alive():
                return
            time.sleep(0.05)
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        raise DaemonError(
            f"the daemon did not start within {START_TIMEOUT:.0f}s",
            hint=f"See {log_path}." + (f" Last lines:\n{tail}" if tail else ""),
        )

    def _handle(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            try:
                data = resp.json()
            except ValueError:
                raise DaemonError(
                    f"daemon answered {resp.status_code}: {resp.text[:300]}"
                ) from None
            if isinstance(data, dict) and "message" in data:
                raise error_from_dict(data)
            raise DaemonError(f"daemon answered {resp.status_code}: {data}")
        if not resp.content:
            return None
        return resp.json()

    def get(self, path: str, **params: Any) -> Any:
        try:
            given = {k: v for k, v in params.items() if v is not None}
            # An empty params mapping would wipe a query string written into ``path``.
            return self._handle(self.http.get(path, params=given or None))
        except httpx.TransportError as exc:
            raise DaemonError(f"cannot reach the daemon at {self.instance.socket}: {exc}") from exc

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return self._handle(self.http.post(path, json=body or {}))
        except httpx.TransportError as exc:
            raise DaemonError(f"cannot reach the daemon at {self.instance.socket}: {exc}") from exc

    def events(self, after: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow the event stream: yields (kind, data) until the connection closes."""
        params = {"after": str(after)} if after is not None else {}
        try:
            with self.http.stream("GET", "/events", params=params,
                                  timeout=httpx.Timeout(None, connect=5.0)) as resp:
                kind, data = "", ""
                for line in resp.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line == "" and kind:
                        yield kind, json.loads(data)
                        kind, data = "", ""
        except httpx.TransportError as exc:
            raise DaemonError(f"the event stream closed: {exc}") from exc

    def close(self) -> None:
        self.http.close()


__all__ = ["AUError", "Client"]
