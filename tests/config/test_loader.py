"""Loading configuration files: values, errors naming file:line:field, security."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from activeupgrade.config.loader import load_file, resolve
from activeupgrade.config.model import (
    ControlType,
    HealthKind,
    ServiceBackend,
    Timing,
    VolumeRole,
)
from activeupgrade.config.validate import parse_duration
from activeupgrade.errors import ConfigError, SecurityError
from activeupgrade.instance import Instance
from tests.config.conftest import Write

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_file(path)
    return info.value


def test_example_loads_with_every_kind_of_setting() -> None:
    cfg = load_file(EXAMPLES / "shop.toml")
    assert cfg.description == "Upgrade the shop to the next release"
    assert [(v.path, v.role) for v in cfg.volumes] == [
        ("/opt/shop", VolumeRole.SYSTEM), ("/etc/shop", VolumeRole.SYSTEM),
        ("/var/lib/shop", VolumeRole.DATA)]
    shop = cfg.services[0]
    assert shop.name == "shop" and shop.stop_grace == 15.0 and shop.start_timeout == 60.0
    assert shop.env == (("SHOP_MODE", "production"),)
    assert shop.sockets[0].listen == "127.0.0.1:8080" and shop.sockets[0].backlog == 1024
    assert shop.health.kind is HealthKind.HTTP and shop.health.timeout == 2.0
    assert shop.backend is ServiceBackend.AUTO
    assert [s.name for s in cfg.services] == ["shop", "shop-db"]
    drain = cfg.actions[0]
    assert drain.control is ControlType.STOP_APPLICATION and drain.timing is Timing.EARLY
    assert drain.args == ("--side", "%ACTIVE_UPGRADE_SIDE%") and drain.timeout == 120.0
    assert cfg.backup.paths == ("/opt/shop/log/*.log", "/etc/shop/shop.conf",
                                "/opt/shop/log/db/*.log")
    assert cfg.upgrade_side.packages == ("/var/cache/shop/shop-2.0.tar.gz",)
    assert cfg.files == (str(EXAMPLES / "shop.toml"), str(EXAMPLES / "shop-db.toml"))


def test_provenance_names_the_file_of_every_setting() -> None:
    cfg = load_file(EXAMPLES / "shop.toml")
    top, child = str(EXAMPLES / "shop.toml"), str(EXAMPLES / "shop-db.toml")
    assert cfg.provenance["service.shop.command"] == top
    assert cfg.provenance["service.shop-db.command"] == child
    assert cfg.provenance["service.shop-db.user"] == "(default)"
    assert cfg.provenance["action.db-checkpoint.timing"] == child
    assert cfg.provenance["backup.paths[/opt/shop/log/db/*.log]"] == child
    assert cfg.provenance["description"] == top  # the parent wins


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ('[[service]]\nname = "a"\ncommand = ["/bin/a"]\nstop_grace = true\n', 4,
         "service.a.stop_grace", "expected a duration"),
        ('[[volume]]\npath = "opt/shop"\n', 2, "volume[1].path", "relative path"),
        ('[[volume]]\npath = "/opt/shop"\nrole = "both"\n', 3, "volume[1].role",
         'one of "system", "data"'),
        ('[[service]]\nname = "a"\ncommand = ["/bin/a"]\n[[service.socket]]\nname = "h"\n'
         'listen = "127.0.0.1:99999"\n', 6, "service.a.socket.h.listen", "valid port"),
        ('[upgrade_side]\nhost_address = "10.0.0.1"\n', 2, "upgrade_side.host_address",
         "prefix length"),
        ('[[action]]\nfile = "/x/run"\ncontrol = "advanced"\ntimeout = "5 minutes"\n', 4,
         "action.run.timeout", "duration"),
        ('description = 5\n', 1, "description", "expected a string"),
        ('[[service]]\nname = "a"\ncomand = ["/bin/a"]\n', 3, "service.a.comand",
         "did you mean 'command'"),
        ('[[service]]\nname = "a"\ncommand = ["/bin/a"]\n[[service]]\nname = "a"\n'
         'command = ["/bin/b"]\n', 4, "service[2].name", "duplicate service name 'a'"),
        ('[[volume]]\npath = "/opt"\n[[volume]]\npath = "/opt/shop/"\n', 4, "volume[2].path",
         "overlaps volume /opt"),
        ('[[action]]\nfile = "/x/run"\n', 1, "action.run.control", "missing required"),
        ('x = [1,\n', 1, "", "TOML syntax error"),
        ('[[service]]\nname = "a"\nbackend = "systemd"\n', 1, "service.a.unit",
         "needs a unit"),
        ('[upgrade_side]\nhost_address = "10.1.0.1/30"\nside_address = "10.2.0.2/30"\n', 3,
         "upgrade_side.side_address", "not in the subnet"),
        ('[[service]]\nname = "a"\ncommand = ["/bin/a"]\nhealth = { kind = "tcp" }\n', 4,
         "service.a.health.target", "HOST:PORT"),
        ('[backup]\npaths = ["/var/log/a", "log/b"]\n', 2, "backup.paths[2]", "relative"),
        ('[[volume]]\npath = "/opt/shop"\ncheckpoint = true\n', 3, "volume[1].checkpoint",
         "a checkpoint is only for data volumes"),
        ('[[volume]]\npath = "/var/lib/db"\nrole = "data"\ncheckpoint = "yes"\n', 4,
         "volume[1].checkpoint", "true or false"),
        ('[[volume]]\npath = "/var/lib/db"\nrole = "data"\ncheckpoint = true\n'
         '[[service]]\nname = "db"\ncommand = ["/bin/db"]\nswitchover = "late-stop"\n', 4,
         "volume[1].checkpoint", "service(s) db (late-stop) keep running through the switch"),
        ('[merge]\nconfirm_within = "ten minutes"\n', 2, "merge.confirm_within", "duration"),
        ('[merge]\nconfirm_in = "10m"\n', 2, "merge.confirm_in", "did you mean"),
        ('[backup]\npaths = [\n  "/var/log/a",  # ok\n  # "x",\n  "log/b",\n]\n', 5,
         "backup.paths[2]", "relative"),
        ('[[service]]\nname = "a"\ncommand = [\n  "/bin/a", "-x",\n  3,\n]\n', 5,
         "service.a.command[3]", "found the number 3 (expected a string)"),
    ],
)
def test_errors_name_file_line_field_and_expectation(
    write: Write, text: str, line: int, field: str, words: str
) -> None:
    path = write("bad.toml", text)
    err = error_of(path)
    assert err.details["file"] == str(path)
    assert err.details["line"] == line, err.message
    assert err.details["field"] == field, err.message
    assert words in err.message
    assert err.message.startswith(f"{path}:{line}: ")
    assert err.hint


def test_checkpoint_and_confirmation_window(write: Write) -> None:
    cfg = load_file(write("ok.toml", '[[volume]]\npath = "/var/lib/db"\nrole = "data"\n'
                          'checkpoint = true\n[[volume]]\npath = "/opt/db"\n'
                          '[merge]\nconfirm_within = "1h30m"\n'))
    assert [v.checkpoint for v in cfg.volumes] == [True, False]
    assert [v.path for v in cfg.checkpointed] == ["/var/lib/db"]
    assert cfg.merge.confirm_within == 5400
    assert load_file(write("none.toml", 'description = "x"\n')).merge.confirm_within == 0


def test_durations() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("2m") == 120
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    assert parse_duration(7) == 7.0
    for bad in ("", "5", "-1s", "1x", "s"):
        with pytest.raises(Exception):  # noqa: B017 - Bad is internal
            parse_duration(bad)


def test_group_or_world_writable_files_are_refused(write: Write) -> None:
    path = write("open.toml", 'description = "x"\n')
    path.chmod(0o664)
    with pytest.raises(SecurityError) as info:
        load_file(path)
    assert "writable by its group" in info.value.message
    assert info.value.hint == f"chmod go-w {path}"


def test_files_not_owned_by_root_are_refused_as_root(write: Write, needs_root: None) -> None:
    path = write("other.toml", 'description = "x"\n')
    os.chown(path, 1000, 1000)
    with pytest.raises(SecurityError) as info:
        load_file(path)
    assert "owned by uid 1000" in info.value.message and "chown root" in info.value.hint


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert "no such configuration file" in error_of(tmp_path / "nope.toml").message
    assert "is a folder" in error_of(tmp_path).message


def test_resolve_bare_names_in_the_default_folder(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    instance = Instance(tmp_path / "home")
    monkeypatch.chdir(tmp_path)
    assert resolve(instance, "shop") == instance.configs / "shop.toml"
    assert resolve(instance, "shop.toml") == instance.configs / "shop.toml"
    (tmp_path / "here.toml").write_text("")
    assert resolve(instance, "here.toml") == tmp_path / "here.toml"
    assert resolve(instance, "./x/y.toml") == tmp_path / "x" / "y.toml"
