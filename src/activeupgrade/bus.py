"""In-process event bus: the one place state changes and log entries are published.

The API's event stream, the CLI's progress display and the consoles subscribe; the core
never imports a UI.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Listener = Callable[["Event"], None]


class EventKind(StrEnum):
    """What an event carries (the ``event:`` field of the API's event stream)."""

    STATUS = "status"
    """The engine status changed (the stream sends the whole status document)."""
    LOG = "log"
    """An activity log entry was written."""
    PROGRESS = "progress"
    """The running step reported progress."""
    OUTPUT = "output"
    """A line a program printed during a request or operation (``au exec``)."""


@dataclass(frozen=True)
class Event:
    """One published event."""

    seq: int
    kind: EventKind
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind.value, "data": self.data}


class Bus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._seq = itertools.count(1)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, kind: EventKind, data: dict[str, Any]) -> Event:
        event = Event(next(self._seq), kind, data)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                continue
        return event
