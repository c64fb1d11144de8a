"""What resync knows to be identical: the manifest and its crash journal.

The manifest maps each relative path to the signatures (see ``tree.sig``) that replica A
and replica B had when resync last made that entry identical on both. An entry whose two
current signatures equal the recorded pair needs no work; any change to content or
metadata changes ``ctime`` and so the signature. Resync gives only pairs it can trust
(outside the filesystem's racy window, ``tree.racy_window``); they are stored as given.

While a resync runs, every finished entry is appended to the journal (fsynced in batches);
after a crash the next resync loads manifest + journal and skips the finished entries.
A completed resync leaves its journal in place (cheaper than rewriting the manifest) until
it grows to a quarter of the manifest, when both are folded into a new manifest.
Formats are pinned by a golden test (``tests/volumes/test_manifest.py``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from activeupgrade.durable import write_durably
from activeupgrade.platform.volumes.tree import Sig

FORMAT = 1
DONE = b'["#done"]\n'
"""Journal line written when a resync completes: entries after the last one are from an
interrupted run."""
Pair = tuple[Sig, Sig]
Entries = dict[str, Pair]


_quote = json.encoder.encode_basestring_ascii
"""The json module's C string encoder: an ASCII JSON literal for any str (names that
are not UTF-8 carry lone surrogates; they are escaped and read back intact)."""


def _pair(values: list[int]) -> Pair:
    a = (values[0], values[1], values[2], values[3], values[4])
    b = (values[5], values[6], values[7], values[8], values[9])
    return a, b


def encode(entries: Entries) -> bytes:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "entries": {rel: [*a, *b] for rel, (a, b) in entries.items()},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode(data: bytes) -> Entries:
    doc = json.loads(data)
    if doc.get("format") != FORMAT:
        return {}
    return {rel: _pair(v) for rel, v in doc["entries"].items()}


class Manifest:
    """The manifest and journal of one volume, kept in its replica folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "manifest.json"
        self.journal_path = folder / "resync.journal"

    def key(self) -> tuple[tuple[int, ...], ...]:
        """Identity and version of the files (inode, mtime, size of each): equal keys,
        equal contents (``state.SyncState`` keeps decoded entries by it)."""
        out: list[tuple[int, ...]] = []
        for path in (self.path, self.journal_path):
            try:
                st = os.stat(path)
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append(())
        return tuple(out)

    def load(self) -> tuple[Entries, int]:
        """The known-identical entries and how many came from an interrupted run."""
        entries: Entries = {}
        try:
            entries = decode(self.path.read_bytes())
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            entries = {}
        resumed = 0
        try:
            with open(self.journal_path, "rb") as fh:
                for line in fh:
                    try:
                        rel, *values = json.loads(line)
                    except ValueError:
                        break  # a torn last line after a crash
                    if rel == "#done":
                        resumed = 0
                        continue
                    if values:
                        entries[rel] = _pair(values)
                    else:
                        entries.pop(rel, None)
                    resumed += 1
        except FileNotFoundError:
            pass
        return entries, resumed

    def settle(self, entries: Entries, journaled: int) -> None:
        """After a completed resync: fold the journal into the manifest when it has grown
        (a quarter of the entries), else leave it to be read with the manifest."""
        if journaled == 0 and self.path.exists():
            return
        if not self.path.exists() or journaled > len(entries) // 4:
            self.save(entries)

    def save(self, entries: Entries) -> None:
        write_durably(self.path, encode(entries))
        self.journal_path.unlink(missing_ok=True)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
        self.journal_path.unlink(missing_ok=True)


class Journal:
    """Appends finished entries; writes them durably in batches."""

    BATCH = 65536
    PERIOD = 1.0
    """An fsync costs milliseconds, and tens of them while a full sync fills the page
    cache: at most one per second (or per BATCH entries). A crash redoes at most that."""

    def __init__(self, manifest: Manifest) -> None:
        self._fh = open(manifest.journal_path, "ab")
        self._pending: list[tuple[str, Pair | None]] = []
        self._last = time.monotonic()
        self.written = 0
        self._fresh = 0

    def add(self, rel: str, pair: Pair | None) -> None:
        """``pair`` None records that ``rel`` is no longer known identical."""
        self._pending.append((rel, pair))
        self._fresh += 1
        if self._fresh >= self.BATCH or time.monotonic() - self._last > self.PERIOD:
            self.flush()

    def flush(self, done: bool = False, durable: bool = True) -> None:
        # the JSON of each line written by hand: json.dumps per entry would cost more
        # than the copy of a small file
        lines = [
            (f"[{_quote(rel)},{','.join(map(str, (*pair[0], *pair[1])))}]\n" if pair
             else f"[{_quote(rel)}]\n").encode()
            for rel, pair in self._pending
        ]
        self.written += len(lines)
        if done:
            lines.append(DONE)
        if lines:
            self._fh.write(b"".join(lines))
            self._fh.flush()
            if durable:
                os.fsync(self._fh.fileno())
        self._pending = []
        self._fresh = 0
        self._last = time.monotonic()

    def close(self, done: bool) -> None:
        """``done``: the resync completed (else it was interrupted and resumes later).

        A completed resync's last lines are written without waiting for the disk: lines
        only ever add entries known identical, so losing the tail in a power cut costs a
        comparison of those entries next time, never a wrong answer; the periodic
        ``flush`` calls bound what an interrupted resync redoes."""
        self.flush(done=done, durable=not done)
        self._fh.close()
