"""Property: random trees, random edits on both replicas; after resync they are identical
(verify passes, and an independent comparison written here agrees)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activeupgrade.platform.volumes import resync as resync_mod
from activeupgrade.platform.volumes import tree
from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.verify import differences

ROOT = os.geteuid() == 0
PATHS = ["a", "b", "c", "d1/a", "d1/b", "d1/d2/a", "d1/d2/c", "d3/a", "e"]
KINDS = ["file", "file", "file", "dir", "symlink", "hardlink", "fifo", "xattr", "chmod",
         "mtime", "delete", "delete", "emptydir"] + (["dev", "chown"] if ROOT else [])

op = st.tuples(st.sampled_from(KINDS), st.sampled_from(PATHS), st.sampled_from(PATHS),
               st.binary(max_size=64), st.integers(0, 0o777), st.integers(0, 3))
edit_op = st.tuples(st.sampled_from([k for k in KINDS if k not in ("dir", "emptydir")]),
                    st.sampled_from(PATHS), st.sampled_from(PATHS), st.binary(max_size=64),
                    st.integers(0, 0o777), st.integers(0, 3))
"""Edits that create no directory of their own (a new directory makes the change tracking
read the whole tree again, which would leave the narrowed comparison untested)."""


def _clear(p: Path) -> None:
    if p.is_symlink() or (p.exists() and not p.is_dir()):
        p.unlink()
    elif p.is_dir():
        shutil.rmtree(p)


def _parent(p: Path) -> None:
    for anc in reversed(p.parents):
        if anc.is_symlink() or (anc.exists() and not anc.is_dir()):
            anc.unlink()
        anc.mkdir(exist_ok=True)


def apply(root: Path, ops: list[tuple[str, str, str, bytes, int, int]]) -> None:
    for kind, rel, other, data, mode, n in ops:
        p, q = root / rel, root / other
        if kind in ("file", "dir", "symlink", "hardlink", "fifo", "dev", "emptydir"):
            _parent(p)
            _clear(p)
        if kind == "file":
            p.write_bytes(data)
            os.chmod(p, mode | 0o600)
        elif kind in ("dir", "emptydir"):
            p.mkdir()
            if kind == "dir":
                (p / f"f{n}").write_bytes(data)
        elif kind == "symlink":
            os.symlink(f"../{other}" if n % 2 else other, p)
        elif kind == "hardlink":
            if q.is_file() and not q.is_symlink() and q != p:
                os.link(q, p)
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "dev":
            os.mknod(p, stat.S_IFCHR | 0o640, os.makedev(1, n + 3))
        elif p.is_symlink() or not p.exists():
            continue
        elif kind == "xattr":
            if p.is_file() or p.is_dir():
                os.setxattr(p, f"user.k{n}", data or b"v")
        elif kind == "chmod":
            os.chmod(p, mode | (0o700 if p.is_dir() else 0o400))
        elif kind == "chown" and ROOT:
            os.chown(p, 1000 + n, 1000 + n)
        elif kind == "mtime":
            os.utime(p, ns=(1_600_000_000_000_000_000 + n, 1_600_000_000_000_000_000 + n * 7))
        elif kind == "delete":
            _clear(p)


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Independent description of a tree: every entry's type, mode, owner, mtime, content,
    link target, device, xattrs and hard-link partners."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            s = os.lstat(p)
            body: object = None
            if stat.S_ISREG(s.st_mode):
                body = Path(p).read_bytes()
                inodes.setdefault(s.st_ino, []).append(rel)
            elif stat.S_ISLNK(s.st_mode):
                body = os.readlink(p)
            xa = {} if stat.S_ISLNK(s.st_mode) else {
                k: os.getxattr(p, k) for k in os.listxattr(p)}
            out[rel] = (s.st_mode, s.st_uid, s.st_gid, s.st_mtime_ns if not stat.S_ISDIR(
                s.st_mode) else 0, body, s.st_rdev if not stat.S_ISREG(s.st_mode) else 0,
                sorted(xa.items()))
    for group in inodes.values():
        for rel in group:
            out[rel] = (*out[rel], tuple(sorted(group)))
    return out


def synced(tmp: Path, base: list[tuple[str, str, str, bytes, int, int]],
           state: SyncState | None = None) -> tuple[Path, Path, Manifest]:
    """Replica a built from ``base`` under ``tmp``, resynced to b: (a, b, manifest)."""
    a, b, meta = tmp / "a", tmp / "b", tmp / "m"
    a.mkdir()
    meta.mkdir()
    apply(a, base)
    m = Manifest(meta)
    resync(a, b, m, src_is_a=True, state=state)
    return a, b, m


@pytest.fixture(params=["measured", "coarse"])
def clock(request: pytest.FixtureRequest) -> Iterator[SyncState]:
    """A daemon's sync state on the filesystem's own timestamp granularity, and on a
    pretended coarse one (a 20 ms racy window, no change tracking) so that both code paths
    are exercised."""
    state = SyncState()
    if request.param == "coarse":
        state.windows[os.stat(tempfile.gettempdir()).st_dev] = 20_000_000
    yield state
    state.close()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(base=st.lists(op, max_size=25), edit_a=st.lists(op, max_size=10),
       edit_b=st.lists(op, max_size=10), wait=st.booleans())
def test_resync_makes_replicas_identical(clock: SyncState,
                                         base: list[tuple[str, str, str, bytes, int, int]],
                                         edit_a: list[tuple[str, str, str, bytes, int, int]],
                                         edit_b: list[tuple[str, str, str, bytes, int, int]],
                                         wait: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, b, m = synced(Path(tmp), base, clock)
        assert differences(a, b) == []
        if wait:
            time.sleep(0.03)  # beyond a coarse clock's racy window: the manifest is trusted
        apply(a, edit_a)
        apply(b, edit_b)
        resync(a, b, m, src_is_a=True, state=clock)
        assert differences(a, b) == []
        assert snapshot(a) == snapshot(b)
        # and back the other way after more edits (the manifest is direction-free)
        apply(b, edit_a)
        resync(b, a, m, src_is_a=False, state=clock)
        assert snapshot(a) == snapshot(b)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(base=st.lists(op, max_size=25),
       rounds=st.lists(st.tuples(st.lists(st.one_of(edit_op, edit_op, edit_op, op),
                                          max_size=8),
                                 st.lists(edit_op, max_size=8), st.booleans()),
                       min_size=2, max_size=5))
def test_narrowed_plan_equals_full_plan(
        monkeypatch: pytest.MonkeyPatch, base: list[tuple[str, str, str, bytes, int, int]],
        rounds: list[tuple[list[tuple[str, str, str, bytes, int, int]],
                           list[tuple[str, str, str, bytes, int, int]], bool]]) -> None:
    """Where change tracking narrows a resync's comparison to the names changed since the
    last one, the plan is exactly the plan of a comparison of every name, through rounds
    of edits on both replicas and resyncs in both directions."""
    full_plan = resync_mod.plan

    def checked(*args: object, **kwargs: object) -> resync_mod.Plan:
        p = full_plan(*args, **kwargs)  # type: ignore[arg-type]
        # (plan's fifth argument is the narrowed set of names: a set or None; the
        # comparison below passes four)
        assert len(args) in (4, 6) and (len(args) == 4 or args[4] is None
                                        or isinstance(args[4], set)), args
        if len(args) == 6 and args[4] is not None:  # narrowed: compare with every name
            assert p == full_plan(*args[:4])  # type: ignore[arg-type]
        return p

    monkeypatch.setattr(resync_mod, "plan", checked)
    state = SyncState()
    with tempfile.TemporaryDirectory() as tmp:
        a, b, m = synced(Path(tmp), base, state)
        for edit_a, edit_b, backwards in rounds:
            apply(a, edit_a)
            apply(b, edit_b)
            if backwards:
                resync(b, a, m, src_is_a=False, state=state)
            else:
                resync(a, b, m, src_is_a=True, state=state)
            assert snapshot(a) == snapshot(b)
        state.close()


def test_resync_after_resync_compares_only_changed_names(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With change tracking, a resync following another in the same direction compares
    only the names changed since (on either side), and still finds every difference."""
    if tree.racy_window(tmp_path) != 0:
        pytest.skip("this filesystem's timestamps are coarse: no change tracking here")
    seen: list[set[str] | None] = []
    full_plan = resync_mod.plan

    def spy(*args: object, **kwargs: object) -> resync_mod.Plan:
        seen.append(args[4] if len(args) > 4 else None)  # type: ignore[arg-type]
        return full_plan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(resync_mod, "plan", spy)
    a, b, meta = tmp_path / "a", tmp_path / "b", tmp_path / "m"
    meta.mkdir()
    for i in range(40):
        (a / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (a / f"d{i % 4}" / f"f{i}").write_bytes(b"x" * i)
    m = Manifest(meta)
    state = SyncState()
    try:
        resync(a, b, m, src_is_a=True, state=state)
        (a / "d1" / "f1").write_bytes(b"changed on a")
        (b / "d2" / "f2").write_bytes(b"changed on b")
        (b / "d3" / "extra").write_bytes(b"only on b")
        res = resync(a, b, m, src_is_a=True, state=state)
        narrowed = seen[-1]
        assert narrowed is not None, "the second resync compared every name"
        assert {"d1/f1", "d2/f2", "d3/extra"} <= narrowed
        assert len(narrowed) < 20, narrowed
        assert (res.copied_files, res.deleted) == (2, 1)
        assert differences(a, b) == []
        # and the other way round: the manifest's pairs are direction-free
        (b / "d0" / "f4").write_bytes(b"changed on b")
        res = resync(b, a, m, src_is_a=False, state=state)
        assert seen[-1] is not None and "d0/f4" in seen[-1] and len(seen[-1]) < 20
        assert (res.copied_files, res.deleted) == (1, 0)
        assert differences(a, b) == []
    finally:
        state.close()
