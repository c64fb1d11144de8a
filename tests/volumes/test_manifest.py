"""The stored formats of the manifest and its journal are pinned (golden round trip)."""

from __future__ import annotations

from pathlib import Path

from activeupgrade.platform.volumes.manifest import Journal, Manifest, decode, encode, pair
from activeupgrade.platform.volumes.tree import SIG

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
