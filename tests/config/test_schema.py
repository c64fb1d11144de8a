"""One schema: the JSON Schema, the model defaults and the template agree with it."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from activeupgrade.config import model
from activeupgrade.config.export import json_schema, markdown_reference
from activeupgrade.config.loader import load_file
from activeupgrade.config.schema import FILE_SCHEMA, Kind, Setting
from activeupgrade.config.template import template_text, write_template
from activeupgrade.config.validate import parse_duration
from activeupgrade.errors import ConfigError

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))


def test_the_json_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_json_schema_validates_the_examples(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    jsonschema.Draft202012Validator(json_schema()).validate(data)
    load_file(path)


def test_the_json_schema_rejects_what_the_loader_rejects(tmp_path: Path) -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    for bad in ({"volume": [{"path": "relative"}]}, {"volume": [{"role": "data"}]},
                {"service": [{"name": "a", "stop_grace": "soon"}]}, {"descripton": "x"},
                {"action": [{"file": "/x", "control": "sometimes"}]}):
        assert not validator.is_valid(bad), bad


def _walk(setting: Setting) -> list[Setting]:
    return [setting, *(s for f in setting.fields for s in _walk(f))]


def test_every_setting_has_a_description() -> None:
    for setting in _walk(FILE_SCHEMA):
        assert setting.description.strip(), setting.key


def _model_defaults(cls: type[Any]) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
    return out


@pytest.mark.parametrize(
    ("setting", "cls", "renames"),
    [("service", model.ServiceSpec, {"socket": "sockets"}),
     ("action", model.ActionSpec, {}), ("volume", model.VolumeSpec, {}),
     ("backup", model.BackupSpec, {}), ("upgrade_side", model.UpgradeSideSpec, {})],
)
def test_schema_defaults_match_the_model(setting: str, cls: type[Any],
                                         renames: dict[str, str]) -> None:
    table = FILE_SCHEMA.field(setting)
    assert table is not None
    defaults = _model_defaults(cls)
    for f in table.fields:
        if f.default is None or f.kind in (Kind.TABLE, Kind.TABLES):
            continue
        name = renames.get(f.key, f.key)
        if name not in defaults:
            continue
        want = defaults[name]
        got = f.default
        if f.kind is Kind.DURATION:
            got = parse_duration(got)
        if isinstance(want, tuple):
            want = list(want) if not want or not isinstance(want[0], tuple) else dict(want)
            if got == {} and want == []:
                want = {}
        assert got == want, f"{setting}.{f.key}"


def test_template_is_valid_and_mentions_every_setting(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    write_template(path, [("/opt/app", "system")], "My upgrade")
    cfg = load_file(path)
    assert cfg.description == "My upgrade" and cfg.volumes[0].path == "/opt/app"
    text = template_text()
    for setting in _walk(FILE_SCHEMA)[1:]:
        assert setting.key in text, setting.key
    with pytest.raises(ConfigError, match="already exists"):
        write_template(path)


def test_reference_lists_every_section() -> None:
    text = markdown_reference()
    for header in ("[[volume]]", "[[service]]", "[[service.socket]]", "[service.health]",
                   "[[action]]", "[backup]", "[upgrade_side]"):
        assert f"### `{header}`" in text
