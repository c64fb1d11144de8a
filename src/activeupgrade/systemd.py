"""The two systemd protocols the daemon speaks, with the standard library only.

- ``notify``: the service manager's notification protocol (``sd_notify(3)``): one datagram
  of ``KEY=value`` lines to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a path, or
  ``@name`` in the abstract namespace). The daemon says ``READY=1`` once its API socket
  listens and ``STOPPING=1`` when it stops, so that a ``Type=notify`` unit is started
  exactly when clients can talk to it. Without ``$NOTIFY_SOCKET`` it does nothing.
- ``Journal``: the journal's native protocol (``systemd-journald.service(8)``, "Native
  Journal Protocol"): one datagram per entry to ``/run/systemd/journal/socket``, each
  field ``NAME=value`` on a line, or, when the value holds a newline, ``NAME``, a newline,
  the value's length as 64-bit little-endian, the value and a newline. Field names are
  upper-case letters, digits and underscores, not starting with an underscore. Without a
  journal (no socket) nothing is sent and nothing fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
from collections.abc import Mapping

JOURNAL_SOCKET = "/run/systemd/journal/socket"
"""Where journald listens for native entries."""
IDENTIFIER = "activeupgrade"
"""``SYSLOG_IDENTIFIER`` of the daemon's entries (``journalctl -t activeupgrade``)."""
MAX_VALUE = 48 * 1024
"""Bytes of one field's value sent at most (a datagram must fit the socket's buffer)."""

_FIELD = re.compile(r"^[A-Z0-9][A-Z0-9_]{0,63}$")


def _address(raw: str) -> str:
    """``$NOTIFY_SOCKET`` as ``socket.connect`` takes it (``@`` is the abstract namespace)."""
    return "\0" + raw[1:] if raw.startswith("@") else raw


def notify(state: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=serving"``) to the service manager; False
    when there is none to tell (not started by systemd as a notify service) or it cannot
    be reached."""
    raw = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not raw or not (raw.startswith("/") or raw.startswith("@")):
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(_address(raw))
        sock.sendall(state.encode())
    except OSError:
        return False
    finally:
        sock.close()
    return True


def field_name(name: str) -> str:
    """``event`` → ``EVENT``; anything not a letter or digit becomes ``_``."""
    cleaned = re.sub(r"[^A-Z0-9_]", "_", name.upper()).lstrip("_")
    return cleaned[:64] or "FIELD"


def encode(fields: Mapping[str, str]) -> bytes:
    """One entry in the native protocol's format."""
    out = bytearray()
    for name, value in fields.items():
        if not _FIELD.match(name):
            raise ValueError(f"not a journal field name: {name!r}")
        data = value.encode("utf-8", "replace")[:MAX_VALUE]
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class Journal:
    """Sends entries to the journal when there is one (owned by whoever logs: the daemon)."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self._sock: socket.socket | None = None

    @property
    def present(self) -> bool:
        return os.path.exists(self.path)

    def send(self, fields: Mapping[str, str]) -> bool:
        """Send one entry (``MESSAGE`` and ``PRIORITY`` among ``fields``); False when the
        journal is not there or refused it."""
        if self._sock is None:
            if not self.present:
                return False
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        payload = encode({"SYSLOG_IDENTIFIER": IDENTIFIER, **fields})
        try:
            self._sock.sendto(payload, self.path)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
