"""The stored formats of the manifest and its journal are pinned (golden round trip)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from activeupgrade.platform.volumes.manifest import (
    PAIR,
    Entries,
    Journal,
    Manifest,
    decode,
    encode,
    pair,
)
from activeupgrade.platform.volumes.tree import RACY_NS, SIG, sig

A = SIG.pack(11, 1700000000000000001, 1600000000000000002, 42, 0o100644)
B = SIG.pack(12, 1700000000000000003, 1600000000000000002, 42, 0o100644)
ODD = "bin/caf\udce9"  # a name that is not UTF-8 (byte 0xE9), as os.fsdecode gives it

GOLDEN_MANIFEST = (
    b'{"format":1,"entries":{"etc/x.conf":[11,1700000000000000001,1600000000000000002,42,'
    b'33188,12,1700000000000000003,1600000000000000002,42,33188]}}'
)
GOLDEN_JOURNAL = (
    b'["bin/caf\\udce9",11,1700000000000000001,1600000000000000002,42,33188,'
    b'12,1700000000000000003,1600000000000000002,42,33188]\n'
    b'["gone"]\n'
    b'["#done"]\n'
)


def test_manifest_format_is_pinned() -> None:
    assert encode({"etc/x.conf": pair(A, B)}) == GOLDEN_MANIFEST
    assert decode(GOLDEN_MANIFEST) == {"etc/x.conf": pair(A, B)}
    odd = {ODD: pair(A, B), 'say "hi"\\': pair(B, A), "plain": pair(A, A)}
    assert decode(encode(odd)) == odd  # escaped names, several entries
    assert decode(encode({})) == {}
    # a document another writer spaced differently is still read
    spaced = b'{"format": 1, "entries": {"etc/x.conf": [11, 1700000000000000001, ' \
        b'1600000000000000002, 42, 33188, 12, 1700000000000000003, 1600000000000000002, ' \
        b'42, 33188]}}'
    assert decode(spaced) == {"etc/x.conf": pair(A, B)}


def test_journal_format_is_pinned_and_read_back(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    m.save({"gone": pair(A, B)})
    j = Journal(m)
    j.add(ODD, pair(A, B))
    j.add("gone", None)
    j.close(done=True)
    assert m.journal_path.read_bytes() == GOLDEN_JOURNAL
    fresh = Manifest(tmp_path)
    entries, resumed = fresh.load()
    assert entries == {ODD: pair(A, B)} and resumed == 0


def test_interrupted_journal_counts_resumed_entries(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    j = Journal(m)
    j.add("a", pair(A, B))
    j.add("b", pair(A, B))
    j.flush()
    # killed here: no "#done" line, and a torn last line
    with open(m.journal_path, "ab") as fh:
        fh.write(b'["c",1,2')
    entries, resumed = Manifest(tmp_path).load()
    assert set(entries) == {"a", "b"} and resumed == 2


def test_a_rebase_saves_the_entries_and_goes_on_in_an_empty_journal(tmp_path: Path) -> None:
    """What a first copy vouched for a directory at a time (``Entries.update_dir``) is
    saved as the manifest in one piece; the lines journaled before are in it, those after
    go to a fresh journal and are read back after a crash (no "#done" line)."""
    m = Manifest(tmp_path)
    m.save({"old": pair(B, B)})
    j = Journal(m)
    j.add("before", pair(A, A))
    entries = Entries()
    entries["before"] = pair(A, A)
    entries.update_dir("usr/bin", [("ls", pair(A, B)), ("caf\udce9", pair(B, A))])
    entries.update_dir("usr/bin", [("ls", pair(B, B))])  # in place: not a second entry
    entries.update_dir("empty", [])
    assert len(entries) == 3 and entries["usr/bin/ls"] == pair(B, B)
    assert "empty" not in entries and not any(r.startswith("empty") for r in entries)
    j.rebase(entries)
    assert decode(m.path.read_bytes()) == dict(entries)
    assert m.journal_path.read_bytes() == b""
    j.add("after", pair(A, B))
    j.flush()
    # killed here
    loaded, resumed = Manifest(tmp_path).load()
    assert loaded == {**entries, "after": pair(A, B)} and resumed == 1


def test_a_snapshot_vouches_only_for_entries_older_than_its_racy_window(
        tmp_path: Path) -> None:
    """The manifest of a replica made as a snapshot: every entry of the replica with the
    same signature on both sides, except those changed within RACY_NS before it (a change
    in the same clock tick would leave the ctime as it was); written at the first load,
    once."""
    b = tmp_path / "b"
    b.mkdir()
    (b / "old").write_bytes(b"old")
    old_changed = os.lstat(b / "old").st_ctime_ns
    while time.time_ns() <= old_changed + 2 * RACY_NS:  # the clock leaves its window
        time.sleep(0.005)
    (b / "new").write_bytes(b"new")
    m = Manifest(tmp_path)
    changed = os.lstat(b / "new").st_ctime_ns
    m.snapshot_made("b", changed + RACY_NS // 2)  # "new" changed just before it
    entries, resumed = m.load()
    assert resumed == 0 and not m.pending_path.exists() and m.path.exists()
    sig_old = sig(os.lstat(b / "old"))
    assert entries["old"] == sig_old + sig_old
    assert "new" not in entries
    assert m.load()[0] == entries  # from the manifest written, not listed again
    (b / "later").write_bytes(b"x")
    assert "later" not in m.load()[0]


def test_a_pending_snapshot_note_after_its_manifest_is_dropped(tmp_path: Path) -> None:
    """A crash between writing a snapshot's manifest and removing the note: the next load
    reads the manifest and removes the note; a torn note is removed too."""
    (tmp_path / "b").mkdir()
    m = Manifest(tmp_path)
    m.save({"kept": PAIR.pack(*range(10))})
    m.pending_path.write_text('{"format": 1, "replica": "b", "before_ns": 0}')
    assert m.load()[0] == {"kept": PAIR.pack(*range(10))}
    assert not m.pending_path.exists()
    m.forget()
    m.pending_path.write_text('{"format": 1, "repl')
    entries, resumed = m.load()
    assert not entries and resumed == 0 and not m.pending_path.exists()


def test_entries_keep_every_pair_through_changes_in_place() -> None:
    """``Entries`` against a plain dict through the changes a resync makes in place: new
    names, pairs replaced, names removed until a directory's buffer is compacted, the
    root's own entry and a name that is not UTF-8; the pairs read back are those set."""
    mine, theirs = Entries(), {}
    rels = ["", "top", ODD, "d/x", "d/y", "d/e/deep", *(f"big/f{i}" for i in range(40))]
    for n, rel in enumerate(rels):
        mine[rel] = theirs[rel] = PAIR.pack(*range(n, n + 10))
    mine["d/x"] = theirs["d/x"] = pair(B, A)  # replaced in place
    for i in range(0, 40, 2):  # most of a directory removed: its slots compacted
        assert mine.pop(f"big/f{i}") == theirs.pop(f"big/f{i}")
    del mine["d/e/deep"], theirs["d/e/deep"]
    mine["big/f0"] = theirs["big/f0"] = pair(A, A)  # a removed name back
    assert mine == theirs and len(mine) == len(theirs) == 26
    assert sorted(mine) == sorted(theirs) and dict(mine.items()) == theirs
    assert all(mine[rel] == p for rel, p in theirs.items())
    assert "d/e/deep" not in mine and mine.get("d/e/deep") is None
    assert mine.pop("nothing", None) is None
    assert decode(encode(mine)) == theirs
