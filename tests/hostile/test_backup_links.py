"""Backup at merge never follows a symbolic link (issue: a ``shadowlink -> /etc/shadow``
on a system volume, or a ``*.log`` glob matching a link into a 0700 folder, copied the
secret into the backup folder, which a local user could read)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from activeupgrade.errors import SecurityError
from activeupgrade.platform.backup import backup_folder, copy_matches


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
