"""The trusted-path helper on real folders, files, links and owners (as root: another
user's folder is made with chown to ``nobody``)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from activeupgrade.errors import SecurityError
from activeupgrade.safepath import check_trusted, open_beneath, open_trusted
from tests.support import cannot_run

NOBODY = 65534


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        cannot_run("making files of another user needs root")
    root = tmp_path / "t"
    (root / "app" / "bin").mkdir(parents=True)
    for p in (root, root / "app", root / "app" / "bin"):
        p.chmod(0o755)
    tool = root / "app" / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho ok\n")
    tool.chmod(0o755)
    return root


def test_a_clean_path_is_trusted(tree: Path) -> None:
    found = check_trusted(tree / "app" / "bin" / "tool")
    assert found.real == tree / "app" / "bin" / "tool"
    with open_trusted(tree / "app" / "bin" / "tool", flags=os.O_RDONLY) as t:
        assert os.read(t.fd, 9) == b"#!/bin/sh"


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_folder_others_can_write_is_refused(tree: Path, mode: int) -> None:
    folder = tree / "app"
    folder.chmod(mode)
    if mode == 0o775:
        os.chown(folder, 0, NOBODY)  # a group other than root's
    with pytest.raises(SecurityError) as err:
        check_trusted(tree / "app" / "bin" / "tool")
    assert str(folder) in err.value.message and "writable" in err.value.message
    assert err.value.hint == f"chmod go-w {folder}"


def test_a_folder_writable_by_the_root_group_or_sticky_is_trusted(tree: Path) -> None:
    (tree / "app").chmod(0o775)  # group root
    (tree / "app" / "bin").chmod(0o1777)
    assert check_trusted(tree / "app" / "bin" / "tool").st.st_uid == 0


def test_a_component_of_another_owner_is_refused(tree: Path) -> None:
    os.chown(tree / "app", NOBODY, NOBODY)
    with pytest.raises(SecurityError, match="owned by uid 65534"):
        check_trusted(tree / "app" / "bin" / "tool")
    os.chown(tree / "app", 0, 0)
    os.chown(tree / "app" / "bin" / "tool", NOBODY, 0)
    with pytest.raises(SecurityError, match=r"tool: .*owned by uid 65534"):
        check_trusted(tree / "app" / "bin" / "tool")


def test_links_are_followed_only_when_trusted(tree: Path) -> None:
    link = tree / "app" / "bin" / "env"
    link.symlink_to("/usr/bin/env")
    assert check_trusted(link).real == Path(os.path.realpath("/usr/bin/env"))
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(SecurityError, match=r"env: .*owned by uid 65534"):
        check_trusted(link)
    # A trusted link into a folder others can write is refused there.
    loose = tree / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    (loose / "x").write_text("")
    (tree / "app" / "bin" / "x").symlink_to(loose / "x")
    with pytest.raises(SecurityError, match=r"loose is writable by others"):
        check_trusted(tree / "app" / "bin" / "x")


def test_dotdot_and_loops(tree: Path) -> None:
    assert check_trusted(f"{tree}/app/bin/../bin/tool").real == tree / "app" / "bin" / "tool"
    (tree / "a").symlink_to("b")
    (tree / "b").symlink_to("a")
    with pytest.raises(SecurityError, match="link too many"):
        check_trusted(tree / "a")
    with pytest.raises(FileNotFoundError):
        check_trusted(tree / "app" / "missing")


def test_open_beneath_never_follows_a_link(tree: Path) -> None:
    (tree / "app" / "logs").symlink_to("/etc")
    (tree / "app" / "shadowlink").symlink_to("/etc/shadow")
    top = os.open(tree / "app", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for rel in ("logs/passwd", "shadowlink"):
            with pytest.raises(OSError) as err:
                open_beneath(top, rel, os.O_RDONLY)
            assert err.value.errno in (errno.ELOOP, errno.ENOTDIR), rel
        with pytest.raises(OSError) as err:
            open_beneath(top, "../t/app/bin/tool")
        assert err.value.errno == errno.EXDEV
        fd = open_beneath(top, "bin/tool", os.O_RDONLY)
        assert os.read(fd, 2) == b"#!"
        os.close(fd)
    finally:
        os.close(top)
