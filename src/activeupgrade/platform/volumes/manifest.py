"""What resync knows to be identical: the manifest and its crash journal.

The manifest maps each relative path to the signatures (see ``tree.sig``) that replica A
and replica B had when resync last made that entry identical on both. An entry whose two
current signatures equal the recorded pair needs no work; any change to content or
metadata changes ``ctime`` and so the signature. Resync gives only pairs it can trust
(outside the filesystem's racy window, ``tree.racy_window``); they are stored as given.

A replica made as a btrfs snapshot (``snapshot.py``) is identical to its source by
construction: adoption writes only a *pending* note (the replica's folder name, the time
just before the snapshot) and the first load lists that replica and writes the manifest
from it, every entry vouching for the signature the snapshot kept (the same on both sides),
except those changed within ``RACY_NS`` before the snapshot. Nothing writes to that replica
before a load: every resync loads first.

While a resync runs, every finished entry is appended to the journal (fsynced in batches);
after a crash the next resync loads manifest + journal and skips the finished entries.
A completed resync leaves its journal in place (cheaper than rewriting the manifest) until
it grows to a quarter of the manifest, when both are folded into a new manifest.
Formats are pinned by a golden test (``tests/volumes/test_manifest.py``).

In memory (``Entries``) the pairs of a directory's entries are packed side by side in one
buffer (``PAIR``: the two signatures as ``tree.SIG`` packs them, 68 bytes each), found by
name, and names and directories are the interpreter's interned strings, shared with the
change trackers' listings of the same trees: an entry costs its 68 bytes and a slot in its
directory's index, with no object of its own and no full path. The manifest is read and
written a piece at a time (never as one JSON document in memory).
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path

from activeupgrade.durable import write_durably
from activeupgrade.platform.volumes.tree import (
    RACY_NS,
    SIG,
    SIG_LEN,
    Sig,
    rec_ctime,
    records,
)

FORMAT = 1
DONE = b'["#done"]\n'
"""Journal line written when a resync completes: entries after the last one are from an
interrupted run."""
PAIR = struct.Struct("=" + SIG.format.lstrip("=") * 2)
PAIR_LEN = PAIR.size
Pair = bytes
"""Replica A's signature then B's, packed (``PAIR``)."""
_HEAD = b'{"format":%d,"entries":{' % FORMAT
_ENTRY = re.compile(rb'"((?:[^"\\]|\\.)*)":\[(-?\d+(?:,-?\d+){9})\],?')
PIECE = 4096
"""Entries per piece written."""


class _Dir:
    """The entries of one directory: name → slot, and the slots' pairs side by side."""

    __slots__ = ("at", "data")

    def __init__(self) -> None:
        self.at: dict[str, int] = {}
        self.data = bytearray()

    def compact(self) -> None:
        """Drop the slots of removed names (once they are most of the buffer)."""
        data, old = bytearray(), self.data
        for slot, (name, i) in enumerate(self.at.items()):
            o = i * PAIR_LEN
            data += old[o:o + PAIR_LEN]
            self.at[name] = slot
        self.data = data


class Entries(MutableMapping[str, Pair]):
    """The known-identical entries: relative path → pair, kept by directory (see the
    module docstring; the root's own entry ``""`` is the name ``""`` of directory ``""``,
    which no other name is). Changed in place by a resync; ``Mapping`` equality with a
    dict."""

    __slots__ = ("_dirs", "_len")

    def __init__(self, items: Iterable[tuple[str, Pair]] = ()) -> None:
        self._dirs: dict[str, _Dir] = {}
        self._len = 0
        for rel, p in items:
            self[rel] = p

    def __len__(self) -> int:
        return self._len

    def get(self, rel: str, default: Pair | None = None) -> Pair | None:  # type: ignore[override]
        head, _, name = rel.rpartition("/")
        d = self._dirs.get(head)
        if d is not None:
            i = d.at.get(name)
            if i is not None:
                o = i * PAIR_LEN
                return bytes(d.data[o:o + PAIR_LEN])
        return default

    def __getitem__(self, rel: str) -> Pair:
        out = self.get(rel)
        if out is None:
            raise KeyError(rel)
        return out

    def __contains__(self, rel: object) -> bool:
        if not isinstance(rel, str):
            return False
        head, _, name = rel.rpartition("/")
        d = self._dirs.get(head)
        return d is not None and name in d.at

    def __setitem__(self, rel: str, p: Pair) -> None:
        head, _, name = rel.rpartition("/")
        self.update_dir(head, ((name, p),))

    def update_dir(self, head: str, pairs: Iterable[tuple[str, Pair]]) -> None:
        """``self[head/name] = pair`` for each (name, pair) of directory ``head`` (a
        directory's entries at once: the directory looked up once, no path split)."""
        d = self._dirs.get(head)
        if d is None:
            d = _Dir()
        at, data = d.at, d.data
        for name, p in pairs:
            if len(p) != PAIR_LEN:
                raise ValueError(f"a manifest pair is {PAIR_LEN} bytes, not {len(p)}")
            i = at.get(name)
            if i is None:
                at[sys.intern(name)] = len(data) // PAIR_LEN
                data += p
                self._len += 1
            else:
                o = i * PAIR_LEN
                data[o:o + PAIR_LEN] = p
        if at and head not in self._dirs:
            self._dirs[sys.intern(head)] = d

    def __delitem__(self, rel: str) -> None:
        head, _, name = rel.rpartition("/")
        d = self._dirs.get(head)
        if d is None or name not in d.at:
            raise KeyError(rel)
        del d.at[name]
        self._len -= 1
        if not d.at:
            del self._dirs[head]
        elif len(d.data) > 2 * PAIR_LEN * len(d.at) + 4 * PAIR_LEN:
            d.compact()

    def pop(self, rel: str, *default: Pair | None) -> Pair | None:  # type: ignore[override]
        out = self.get(rel)
        if out is None:
            if default:
                return default[0]
            raise KeyError(rel)
        del self[rel]
        return out

    def __iter__(self) -> Iterator[str]:
        for head, d in self._dirs.items():
            prefix = f"{head}/" if head else ""
            for name in d.at:
                yield prefix + name

    def items(self) -> Iterator[tuple[str, Pair]]:  # type: ignore[override]
        for head, d in self._dirs.items():
            prefix = f"{head}/" if head else ""
            data = d.data
            for name, i in d.at.items():
                o = i * PAIR_LEN
                yield prefix + name, bytes(data[o:o + PAIR_LEN])


def pair(a: Sig, b: Sig) -> Pair:
    """The pair of signatures ``a`` (replica A's) and ``b``."""
    return a + b


def numbers(p: Pair) -> tuple[int, ...]:
    """The ten numbers of a pair, as the files store them."""
    return PAIR.unpack(p)


_quote = json.encoder.encode_basestring_ascii
"""The json module's C string encoder: an ASCII JSON literal for any str (names that
are not UTF-8 carry lone surrogates; they are escaped and read back intact)."""


def _pair(values: list[int]) -> Pair:
    return PAIR.pack(*values)


def pieces(entries: Mapping[str, Pair]) -> Iterator[bytes]:
    """The manifest file, a piece at a time (as ``json.dumps`` with compact separators
    writes the document)."""
    yield _HEAD
    batch: list[str] = []
    first = True
    for rel, p in entries.items():
        batch.append(f"{_quote(rel)}:[{','.join(map(str, PAIR.unpack(p)))}]")
        if len(batch) >= PIECE:
            yield (("" if first else ",") + ",".join(batch)).encode()
            batch, first = [], False
    if batch:
        yield (("" if first else ",") + ",".join(batch)).encode()
    yield b"}}"


def encode(entries: Mapping[str, Pair]) -> bytes:
    return b"".join(pieces(entries))


def decode(data: bytes) -> Entries:
    """The entries of a manifest file (entry by entry; a document this writer would not
    have written is read by the json module instead)."""
    if not (data.startswith(_HEAD) and data.endswith(b"}}")):
        return _decode_json(data)
    out = Entries()
    pos, end = len(_HEAD), len(data) - 2
    pack = PAIR.pack
    for m in _ENTRY.finditer(data, pos, end):
        if m.start() != pos:
            return _decode_json(data)
        pos = m.end()
        raw = m.group(1)
        rel = json.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode("ascii")
        out[rel] = pack(*map(int, m.group(2).split(b",")))
    if pos != end:
        return _decode_json(data)
    return out


def _decode_json(data: bytes) -> Entries:
    doc = json.loads(data)
    if doc.get("format") != FORMAT:
        return Entries()
    return Entries((rel, _pair(v)) for rel, v in doc["entries"].items())


def from_snapshot(entries: Iterable[tuple[str, bytes]], before_ns: int) -> Entries:
    """The entries a snapshot taken after ``before_ns`` vouches for (``entries``: its
    records, read before anything wrote to it)."""
    trusted_before = before_ns - RACY_NS
    out = Entries()
    for rel, rec in entries:
        if rec_ctime(rec) < trusted_before:
            sig = rec[:SIG_LEN]
            out[rel] = sig + sig
    return out


class Manifest:
    """The manifest and journal of one volume, kept in its replica folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "manifest.json"
        self.journal_path = folder / "resync.journal"
        self.pending_path = folder / "snapshot.pending"

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

    def snapshot_made(self, replica: str, before_ns: int) -> None:
        """Replica folder ``replica`` was just made as a snapshot of the other, taken after
        ``before_ns``: its entries are written at the next load."""
        self.forget()
        doc = {"format": FORMAT, "replica": replica, "before_ns": before_ns}
        write_durably(self.pending_path, json.dumps(doc).encode())

    def settle_snapshot(self) -> Entries | None:
        """Where a replica was made as a snapshot (``snapshot_made``) and no manifest
        written since: list it, write the manifest and return its entries; else None.
        Every load does this first."""
        try:
            doc = json.loads(self.pending_path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            doc = {}
        replica = doc.get("replica")
        if self.path.exists() or doc.get("format") != FORMAT or replica not in ("a", "b"):
            self.pending_path.unlink(missing_ok=True)  # written already (or unreadable)
            return None
        entries = from_snapshot(records(self.path.parent / replica), int(doc["before_ns"]))
        self.save(entries)
        self.pending_path.unlink(missing_ok=True)
        return entries

    def load(self) -> tuple[Entries, int]:
        """The known-identical entries and how many came from an interrupted run."""
        settled = self.settle_snapshot()
        if settled is not None:
            return settled, 0
        try:
            entries = decode(self.path.read_bytes())
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            entries = Entries()
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

    def save(self, entries: Mapping[str, Pair]) -> None:
        write_durably(self.path, pieces(entries))
        self.journal_path.unlink(missing_ok=True)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
        self.journal_path.unlink(missing_ok=True)
        self.pending_path.unlink(missing_ok=True)


class Journal:
    """Appends finished entries; writes them a piece at a time and durably at most once
    a period."""

    PIECE = 4096
    """Entries encoded and written at a time (no fsync): what is held in memory."""
    PERIOD = 1.0
    """An fsync costs milliseconds, and tens of them while a full sync fills the page
    cache: at most one per second. A crash redoes at most that."""

    def __init__(self, manifest: Manifest) -> None:
        self._manifest = manifest
        self._fh = open(manifest.journal_path, "ab")
        self._pending: list[tuple[str, Pair | None]] = []
        self._last = time.monotonic()
        self.written = 0

    def add(self, rel: str, pair: Pair | None) -> None:
        """``pair`` None records that ``rel`` is no longer known identical."""
        self._pending.append((rel, pair))
        if len(self._pending) >= self.PIECE:
            self._write()
        if time.monotonic() - self._last > self.PERIOD:
            self.flush()

    def _write(self, tail: bytes = b"") -> None:
        # the JSON of each line written by hand: json.dumps per entry would cost more
        # than the copy of a small file
        lines = [
            (f"[{_quote(rel)},{','.join(map(str, PAIR.unpack(p)))}]\n" if p
             else f"[{_quote(rel)}]\n").encode()
            for rel, p in self._pending
        ]
        self.written += len(lines)
        self._pending = []
        if tail:
            lines.append(tail)
        if lines:
            self._fh.write(b"".join(lines))

    def flush(self, done: bool = False, durable: bool = True) -> None:
        self._write(DONE if done else b"")
        self._fh.flush()
        if durable:
            os.fsync(self._fh.fileno())
        self._last = time.monotonic()

    def rebase(self, entries: Mapping[str, Pair]) -> None:
        """Save ``entries`` (every line journaled so far is in them) as the manifest, durably,
        and go on in an empty journal: what a first copy vouched for in bulk is written
        in one piece, not a line per entry."""
        self._pending = []
        self._fh.close()
        self._manifest.save(entries)  # (removes the journal file)
        self._fh = open(self._manifest.journal_path, "ab")
        self.written = 0
        self._last = time.monotonic()

    def close(self, done: bool) -> None:
        """``done``: the resync completed (else it was interrupted and resumes later).

        A completed resync's last lines are written without waiting for the disk: lines
        only ever add entries known identical, so losing the tail in a power cut costs a
        comparison of those entries next time, never a wrong answer; the periodic
        ``flush`` calls bound what an interrupted resync redoes."""
        self.flush(done=done, durable=not done)
        self._fh.close()
