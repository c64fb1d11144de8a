"""``au config`` through the entry point, and the configuration API beside it."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from activeupgrade.api.client import Client
from activeupgrade.errors import ConfigError
from activeupgrade.instance import Instance
from tests.config.conftest import Write
from tests.support import au, new_instance

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    h = new_instance(tmp_path / "home")
    yield h
    au(h, "daemon", "--stop")


def test_validate_a_type_error_exits_3_with_file_line_and_field(home: Path, write: Write) -> None:
    bad = write("bad.toml", '[[service]]\nname = "a"\ncommand = ["/bin/a"]\nstop_grace = true\n')
    r = au(home, "config", "validate", str(bad))
    assert r.returncode == 3
    assert f"{bad}:4: service.a.stop_grace: found true (expected a duration" in r.stderr
    assert "hint: Write for example stop_grace = " in r.stderr
    assert "Traceback" not in r.stderr


def test_validate_names_a_cycle_between_two_files(home: Path, write: Write) -> None:
    a = write("a.toml", 'include = ["b.toml"]\n')
    write("b.toml", 'include = ["a.toml"]\n')
    r = au(home, "config", "validate", str(a))
    assert r.returncode == 3 and "include loop: a.toml → b.toml → a.toml" in r.stderr


def test_validate_good_file_and_bare_names_in_the_current_folder(home: Path) -> None:
    r = au(home, "config", "validate", "shop.toml", cwd=EXAMPLES)
    assert r.returncode == 0, r.stderr
    assert "valid (2 file(s), 3 volume(s), 2 service(s), 3 action(s))" in r.stdout


def test_schema_command_validates_the_examples(home: Path) -> None:
    r = au(home, "config", "schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    for path in EXAMPLES.glob("*.toml"):
        jsonschema.validate(tomllib.loads(path.read_text()), schema)


def test_show_prints_the_file_of_every_setting(home: Path) -> None:
    r = au(home, "config", "show", str(EXAMPLES / "shop.toml"), "--json")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["settings"]["service.shop-db.stop_grace"] == {
        "value": 30.0, "from": str(EXAMPLES / "shop-db.toml")}
    assert shown["settings"]["service.shop.user"]["from"] == "(default)"
    text = au(home, "config", "show", str(EXAMPLES / "shop.toml")).stdout
    assert "service.shop-db.stop_grace = 30.0" in text and "# shop-db.toml" in text


def test_summary_and_new(home: Path, tmp_path: Path) -> None:
    r = au(home, "config", "summary", str(EXAMPLES / "shop.toml"))
    assert r.returncode == 0 and "holds socket http on 127.0.0.1:8080" in r.stdout
    target = tmp_path / "fresh.toml"
    r = au(home, "config", "new", str(target), "--volume", "/opt/app", "--description", "x")
    assert r.returncode == 0, r.stderr
    assert au(home, "config", "validate", str(target)).returncode == 0
    assert au(home, "config", "new", str(target)).returncode == 3


def test_load_records_the_file_for_the_next_session(home: Path, write: Write) -> None:
    good = write("good.toml", '[[volume]]\npath = "/opt/app"\n')
    r = au(home, "config", "load", str(good))
    assert r.returncode == 0, r.stderr
    status = json.loads(au(home, "status", "--json").stdout)
    assert status["config"] == str(good)
    bad = write("worse.toml", "volume = 3\n")
    r = au(home, "config", "load", str(bad))
    assert r.returncode == 3 and f"{bad}:1: volume" in r.stderr
    assert json.loads(au(home, "status", "--json").stdout)["config"] == str(good)
    assert au(home, "config", "load", "--none").returncode == 0
    assert json.loads(au(home, "status", "--json").stdout)["config"] == ""


def test_api_gives_the_cli_s_exact_error_and_saves_files(home: Path, write: Write) -> None:
    text = '[[service]]\nname = "a"\ncommand = ["/bin/a"]\nstop_grace = true\n'
    client = Client.for_instance(Instance(home))
    configs = Instance(home).configs
    with pytest.raises(ConfigError) as api_err:
        client.post("/config/validate", {"name": "x.toml", "text": text})
    configs.mkdir(parents=True, exist_ok=True)
    (configs / "x.toml").write_text(text)
    cli = au(home, "config", "validate", "x.toml")
    assert f"au: error: {api_err.value.message}\nhint: {api_err.value.hint}" in cli.stderr
    assert api_err.value.details["line"] == 4
    saved = client.post("/config/save", {"name": "y.toml", "text": '[[volume]]\npath = "/a"\n'})
    assert saved["saved"] == str(configs / "y.toml") and saved["valid"]
    assert (configs / "y.toml").stat().st_mode & 0o777 == 0o644
    with pytest.raises(ConfigError):
        client.post("/config/save", {"name": "z.toml", "text": "volume = 1\n"})
    assert not (configs / "z.toml").exists()
    summary = client.get("/config/summary", file="y.toml")
    assert "/a (system" in summary["text"]
    assert client.get("/config/files")["files"] == ["x.toml", "y.toml"]
    assert client.get("/config/schema")["$schema"].endswith("2020-12/schema")
