"""Fault injection for the filesystem under the instance folder (a real tmpfs of a few
MiB as AU_HOME): full (ENOSPC) and read-only (EROFS). Each write that fails is a clear
error of the hierarchy (message, hint, its own exit code), never a traceback nor "This is
a bug", and the instance is never wedged: once the fault is gone the same command works.

(The issue: `au check` on a full disk answered `OperationalError: database or disk is
full / This is a bug`, then every action was "not allowed in Idle / Busy" until the daemon
was restarted.)
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from activeupgrade.api.client import Client
from activeupgrade.errors import DiskFullError, FilesystemError, InstanceError, os_error
from activeupgrade.instance import Instance
from tests.support import au, cannot_run, new_instance, wait_until


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An 8 MiB tmpfs holding an instance whose daemon has started."""
    if os.geteuid() != 0:
        cannot_run("mounting a small filesystem needs root")
    top = tmp_path_factory.mktemp("faults") / "fs"
    top.mkdir()
    _mount("-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(top))
    home = top / "home"
    try:
        new_instance(home)
        assert au(home, "check").returncode == 0
        yield home
    finally:
        au(home, "daemon", "--stop")
        subprocess.run(["umount", "-l", str(top)], check=False)


def _fill(home: Path) -> Path:
    filler = home.parent / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _clean(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr and "This is a bug" not in r.stderr, r.stderr
    assert "hint:" in r.stderr, r.stderr


def _status(home: Path) -> dict[str, object]:
    r = au(home, "status", "--json")
    assert r.returncode == 0, r.stderr
    doc: dict[str, object] = json.loads(r.stdout)
    return doc


def test_a_full_disk_is_a_clear_error_and_wedges_nothing(small: Path) -> None:
    filler = _fill(small)
    try:
        for _ in range(2):  # the second time too: nothing was left Busy
            r = au(small, "check")
            _clean(r)
            assert r.returncode == DiskFullError.exit_code, (r.returncode, r.stderr)
            assert "no space left" in r.stderr and "df -h" in r.stderr, r.stderr
            assert _status(small)["operational_state"] == "Ready"
    finally:
        filler.unlink()
    r = au(small, "check")
    assert r.returncode == 0, r.stderr
    assert _status(small)["operational_state"] == "Ready"


def test_saving_a_configuration_on_a_full_disk(small: Path) -> None:
    """POST /config/save (the consoles' editor) on a full disk: DiskFullError, the old
    file kept whole, no temporary file left; after freeing space the save works."""
    client = Client.for_instance(Instance(small))
    old = 'description = "old"\n'
    client.post("/config/save", {"name": "x.toml", "text": old})
    new = 'description = "' + "n" * 200_000 + '"\n'
    filler = _fill(small)
    try:
        with pytest.raises(DiskFullError) as err:
            client.post("/config/save", {"name": "x.toml", "text": new})
        assert "no space left" in err.value.message and err.value.hint
        assert (small / "configs" / "x.toml").read_text() == old
        assert sorted(p.name for p in (small / "configs").iterdir()) == ["x.toml"]
    finally:
        filler.unlink()
    client.post("/config/save", {"name": "x.toml", "text": new})
    assert (small / "configs" / "x.toml").read_text() == new


def test_an_adoption_on_a_full_disk_fails_clearly_and_can_be_run_again(small: Path) -> None:
    app = small.parent / "app"
    app.mkdir()
    content = {f"f{i}": os.urandom(200_000) for i in range(3)}
    for name, data in content.items():
        (app / name).write_bytes(data)
    filler = small.parent / "filler"
    free = os.statvfs(small.parent)
    # Leave room for part of one copy only: the adoption runs out of space mid-way.
    filler.write_bytes(b"\0" * max(0, (free.f_bavail - 100) * free.f_frsize))
    try:
        r = au(small, "volume", "adopt", str(app), "--role", "system")
        _clean(r)
        assert r.returncode in (DiskFullError.exit_code, 20), (r.returncode, r.stderr)
        assert "no space left" in r.stderr, r.stderr
        assert _status(small)["operational_state"] == "Ready"
        assert {p.name: p.read_bytes() for p in app.iterdir()} == content
    finally:
        filler.unlink()
    r = au(small, "volume", "adopt", str(app), "--role", "system")
    assert r.returncode == 0, r.stderr
    assert {p.name: p.read_bytes() for p in app.iterdir()} == content
    assert au(small, "volume", "release", str(app)).returncode == 0


def test_a_read_only_filesystem_is_a_clear_error(small: Path) -> None:
    # A filesystem with files open for writing cannot become read-only: stop the daemon.
    assert au(small, "daemon", "--stop").returncode == 0
    wait_until(lambda: subprocess.run(["mount", "-o", "remount,ro", str(small.parent)],
                                      capture_output=True).returncode == 0, 30,
               "the filesystem to become read-only")
    try:
        r = au(small, "check")
        _clean(r)
        assert r.returncode in (InstanceError.exit_code, FilesystemError.exit_code), r.stderr
        assert "read-only" in r.stderr.lower(), r.stderr
    finally:
        _mount("-o", "remount,rw", str(small.parent))
    assert au(small, "check").returncode == 0
    assert _status(small)["operational_state"] == "Ready"


def test_no_daemon_can_start_on_a_full_disk(small: Path) -> None:
    """Said at once (the daemon could not even write why to its log)."""
    assert au(small, "daemon", "--stop").returncode == 0
    wait_until(lambda: not (small / "api.sock").exists(), 30, "the daemon to stop")
    filler = _fill(small)
    try:
        r = au(small, "status")
        _clean(r)
        assert r.returncode == DiskFullError.exit_code, (r.returncode, r.stderr)
        assert "cannot start: no space left" in r.stderr, r.stderr
    finally:
        filler.unlink()
    assert _status(small)["operational_state"] == "Ready"


@pytest.mark.parametrize(("code", "cls", "words"), [
    (errno.ENOSPC, DiskFullError, "no space left"),
    (errno.EDQUOT, DiskFullError, "no space left"),
    (errno.EROFS, FilesystemError, "read-only"),
    (errno.EIO, FilesystemError, "input/output error"),
])
def test_every_filesystem_fault_has_its_error(code: int, cls: type[FilesystemError],
                                               words: str) -> None:
    """The one translation used by the CLI and API edges (EIO cannot be caused on a real
    filesystem without a failing device, so it is checked here, from the errno up)."""
    found = os_error(OSError(code, os.strerror(code), "/var/lib/x/state.db"), "save")
    assert type(found) is cls and found is not None
    assert words in found.message and "/var/lib/x/state.db" in found.message
    assert found.hint
    assert os_error(OSError(errno.ENOENT, "gone"), "save") is None
