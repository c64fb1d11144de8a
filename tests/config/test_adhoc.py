"""Volumes given on the command line instead of a configuration file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activeupgrade.config.adhoc import parse_volume, volumes_file
from activeupgrade.config.loader import load_file
from activeupgrade.config.model import VolumeRole
from activeupgrade.errors import ConfigError
from activeupgrade.instance import Instance
from tests.support import au, new_instance


def test_parse_volume() -> None:
    assert parse_volume("/opt/shop") == ("/opt/shop", VolumeRole.SYSTEM)
    assert parse_volume("/var/lib/shop:data") == ("/var/lib/shop", VolumeRole.DATA)
    assert parse_volume("/odd:name") == ("/odd:name", VolumeRole.SYSTEM)


def test_volumes_file_is_an_ordinary_checked_file(tmp_path: Path) -> None:
    instance = Instance(tmp_path / "home")
    path = volumes_file(instance, ["/opt/shop", "/var/lib/shop:data"])
    assert path.parent == instance.home / "cmdline"
    cfg = load_file(path)
    assert [(v.path, v.role) for v in cfg.volumes] == [
        ("/opt/shop", VolumeRole.SYSTEM), ("/var/lib/shop", VolumeRole.DATA)]
    assert volumes_file(instance, ["/opt/shop", "/var/lib/shop:data"]) == path
    with pytest.raises(ConfigError) as info:
        volumes_file(instance, ["/opt", "/opt/shop"])
    assert info.value.message.startswith("--volume: ") and "overlaps" in info.value.message
    with pytest.raises(ConfigError, match="relative path"):
        volumes_file(instance, ["opt"])


def test_au_plan_with_volumes_on_the_command_line(tmp_path: Path) -> None:
    home = new_instance(tmp_path / "home")
    try:
        r = au(home, "plan", "--json", "--volume", str(tmp_path), "--volume", "/nonexistent:data")
        assert r.returncode == 0, r.stderr
        plan = json.loads(r.stdout)
        assert plan["volumes"] == [
            {"path": str(tmp_path), "role": "system", "checkpoint": False},
            {"path": "/nonexistent", "role": "data", "checkpoint": False}]
        failed = {c["id"] for c in plan["checks"] if not c["ok"]}
        assert "AU-C002" in failed
    finally:
        au(home, "daemon", "--stop")
