"""Nested configuration files (SPEC §8) and the staging area."""

from __future__ import annotations

from pathlib import Path

import pytest

from activeupgrade.config import staging
from activeupgrade.config.loader import load_file
from activeupgrade.errors import ConfigError
from activeupgrade.instance import Instance
from tests.config.conftest import Write


def test_parent_wins_children_add_and_volumes_of_children_are_ignored(write: Write) -> None:
    top = write("a.toml", 'description = "top"\ninclude = ["b.toml"]\n'
                '[[volume]]\npath = "/opt/a"\n'
                '[[service]]\nname = "web"\ncommand = ["/opt/a/web"]\n'
                '[upgrade_side]\nhostname = "from-a"\n')
    write("b.toml", 'description = "child"\ninclude = ["c.toml"]\n'
          '[[volume]]\npath = "/opt/b"\n'
          '[[service]]\nname = "web"\ncommand = ["/opt/b/web"]\n'
          '[[service]]\nname = "db"\ncommand = ["/opt/b/db"]\n'
          '[upgrade_side]\nhostname = "from-b"\nisolation = "directory"\n'
          '[backup]\npaths = ["/opt/a/log"]\n')
    write("c.toml", '[[action]]\nfile = "/opt/a/act"\ncontrol = "advanced"\n'
          '[[service]]\nname = "db"\ncommand = ["/opt/c/db"]\n')
    cfg = load_file(top)
    assert cfg.description == "top"
    assert [v.path for v in cfg.volumes] == ["/opt/a"]
    assert {s.name: s.command for s in cfg.services} == {
        "web": ("/opt/a/web",), "db": ("/opt/b/db",)}
    assert cfg.upgrade_side.hostname == "from-a"
    assert cfg.upgrade_side.isolation == "directory"  # only the child sets it
    assert [a.name for a in cfg.actions] == ["act"]
    assert cfg.provenance["action.act.file"] == str(top.parent / "c.toml")
    assert cfg.provenance["upgrade_side.isolation"] == str(top.parent / "b.toml")
    assert any("b.toml: its volume selection" in n for n in cfg.notices)
    assert any("service 'web' ignored" in n for n in cfg.notices)
    assert any("service 'db' ignored" in n and n.startswith("c.toml") for n in cfg.notices)
    assert any("upgrade_side.hostname ignored" in n for n in cfg.notices)


def test_a_cycle_between_two_files_is_named(write: Write) -> None:
    a = write("a.toml", 'include = ["b.toml"]\n')
    write("b.toml", '# b\n\ninclude = ["a.toml"]\n')
    with pytest.raises(ConfigError) as info:
        load_file(a)
    err = info.value
    assert "include loop: a.toml → b.toml → a.toml" in err.message
    assert err.details["file"].endswith("b.toml") and err.details["line"] == 3


def test_a_file_including_itself(write: Write) -> None:
    a = write("a.toml", 'include = ["a.toml"]\n')
    with pytest.raises(ConfigError, match=r"include loop: a.toml → a.toml"):
        load_file(a)


def test_missing_child_names_the_including_file_and_line(write: Write) -> None:
    a = write("a.toml", 'include = ["b.toml"]\n')
    write("b.toml", 'description = "b"\ninclude = [\n  "c.toml",\n  "gone.toml",\n]\n')
    write("c.toml", "")
    with pytest.raises(ConfigError) as info:
        load_file(a)
    err = info.value
    assert "'gone.toml' not found" in err.message and "included by b.toml" in err.message
    assert err.details["file"].endswith("b.toml") and err.details["line"] == 4


def test_children_must_be_in_the_same_folder(write: Write) -> None:
    a = write("a.toml", 'include = ["sub/b.toml"]\n')
    with pytest.raises(ConfigError, match="same folder"):
        load_file(a)


def test_diamond_is_read_once(write: Write) -> None:
    a = write("a.toml", 'include = ["b.toml", "c.toml"]\n')
    write("b.toml", 'include = ["d.toml"]\n')
    write("c.toml", 'include = ["d.toml"]\n')
    write("d.toml", '[[service]]\nname = "x"\ncommand = ["/bin/x"]\n')
    cfg = load_file(a)
    assert [Path(f).name for f in cfg.files] == ["a.toml", "b.toml", "d.toml", "c.toml"]
    assert len(cfg.services) == 1 and not cfg.notices


def test_staged_copy_loads_identically_and_ignores_later_edits(
    write: Write, tmp_path: Path
) -> None:
    folder = tmp_path / "configs"
    top = write("a.toml", 'description = "v1"\ninclude = ["b.toml"]\n'
                '[[volume]]\npath = "/opt/a"\n', folder)
    child = write("b.toml", '[[service]]\nname = "s"\ncommand = ["/bin/s1"]\n', folder)
    instance = Instance(tmp_path / "home")
    copy = staging.stage(instance, "s1", top)
    assert copy == instance.staging / "s1" / "a.toml"
    before = load_file(copy)
    assert before.services[0].command == ("/bin/s1",)
    top.write_text('description = "v2"\n')
    child.write_text('[[service]]\nname = "s"\ncommand = ["/bin/s2"]\n')
    after = load_file(staging.staged(instance, "s1", top))
    assert after.description == "v1" and after.services[0].command == ("/bin/s1",)
    assert after.services == before.services and after.volumes == before.volumes
    staging.stage(instance, "s1", copy)  # idempotent on its own copy
    assert load_file(copy).description == "v1"
    staging.forget(instance, "s1")
    assert not (instance.staging / "s1").exists()


def test_staging_refuses_a_broken_configuration(write: Write, tmp_path: Path) -> None:
    top = write("a.toml", 'include = ["gone.toml"]\n')
    instance = Instance(tmp_path / "home")
    with pytest.raises(ConfigError, match=r"gone\.toml"):
        staging.stage(instance, "s1", top)
    assert not (instance.staging / "s1").exists()
