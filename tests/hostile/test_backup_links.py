"""Backup at merge never follows a symbolic link (issue: a ``shadowlink -> /etc/shadow``
on a system volume, or a ``*.log`` glob matching a link into a 0700 folder, copied the
secret into the backup folder, which a local user could read)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from activeupgrade.errors import DiskFullError, SecurityError
from activeupgrade.platform.backup import backup_folder, copy_matches
from activeupgrade.safecopy import MAX_DEPTH
from tests.support import cannot_run


@pytest.fixture
def replica(tmp_path: Path) -> Path:
    old = tmp_path / "replica-a"
    (old / "logs").mkdir(parents=True)
    (old / "logs" / "app.log").write_text("line\n")
    os.chmod(old / "logs" / "app.log", 0o640)
    secret = tmp_path / "private"
    secret.mkdir(mode=0o700)
    (secret / "key.log").write_text("SECRET\n")
    (old / "shadowlink").symlink_to("/etc/shadow")
    (old / "logs" / "key.log").symlink_to(secret / "key.log")
    (old / "linked").symlink_to(secret)
    os.mkfifo(old / "logs" / "pipe.log")
    return old


def _no_secret(dest: Path) -> None:
    for root, _, names in os.walk(dest):
        for name in names:
            p = Path(root) / name
            if not p.is_symlink():
                assert b"SECRET" not in p.read_bytes() and p.name != "shadow", p


def test_links_are_saved_as_links(replica: Path, tmp_path: Path) -> None:
    dest = backup_folder(tmp_path / "backups", "s1")
    live = "/opt/app"
    got = copy_matches(replica, live, ["/opt/app/shadowlink", "/opt/app/logs/*.log",
                                       "/opt/app/linked/*.log"], dest)
    assert got.saved == ["/opt/app/logs/app.log", "/opt/app/logs/key.log",
                         "/opt/app/shadowlink"]
    assert any("linked/key.log" in s and "symbolic link" in s for s in got.skipped)
    assert any("pipe.log" in s and "not a regular file" in s for s in got.skipped)
    saved = dest / "opt" / "app"
    assert os.readlink(saved / "shadowlink") == "/etc/shadow"
    assert (saved / "logs" / "key.log").is_symlink()
    assert (saved / "logs" / "app.log").read_text() == "line\n"
    assert stat.S_IMODE((saved / "logs" / "app.log").stat().st_mode) == 0o640
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    _no_secret(dest)


def test_the_whole_volume_saves_links_as_links(replica: Path, tmp_path: Path) -> None:
    dest = backup_folder(tmp_path / "backups", "s2")
    got = copy_matches(replica, "/opt/app", ["/opt/app"], dest)
    assert "/opt/app/shadowlink" in got.saved and "/opt/app/linked" in got.saved
    _no_secret(dest)


def test_a_backup_folder_under_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "shared"
    loose.mkdir()
    loose.chmod(0o777)
    with pytest.raises(SecurityError, match="writable by others"):
        backup_folder(loose / "backups", "s3")
    assert not (loose / "backups").exists()


def test_a_very_deep_tree_is_cut_and_said(tmp_path: Path) -> None:
    """A tree deeper than any path the backup can hold is saved down to MAX_DEPTH and the
    rest is listed as skipped (no RecursionError, no name too long)."""
    old = tmp_path / "replica"
    top = old / "logs"
    top.mkdir(parents=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(MAX_DEPTH + 20):  # deeper than PATH_MAX allows by name
            os.mkdir("dddddddddddddddddddddddddddddd", dir_fd=fd)
            nxt = os.open("dddddddddddddddddddddddddddddd", os.O_RDONLY | os.O_DIRECTORY,
                          dir_fd=fd)
            os.close(fd)
            fd = nxt
        with open(os.open("deep.log", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as fh:
            fh.write("x")
    finally:
        os.close(fd)
    dest = backup_folder(tmp_path / "backups", "s4")
    got = copy_matches(old, "/opt/app", ["/opt/app/logs"], dest)
    assert got.saved == [] and got.skipped, got
    assert all("name too long" in s.lower() or "deeper than" in s for s in got.skipped), got


def test_a_full_backup_folder_fails_clearly(replica: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        cannot_run("mounting a small filesystem needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                   check=True)
    try:
        (replica / "logs" / "big.log").write_bytes(os.urandom(256 * 1024))
        dest = backup_folder(small / "backups", "s5")
        with pytest.raises(DiskFullError) as err:
            copy_matches(replica, "/opt/app", ["/opt/app/logs/*.log"], dest)
        assert "no space left" in err.value.message and str(dest) in err.value.message
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
