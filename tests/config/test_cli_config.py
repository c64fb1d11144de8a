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


def test_every_problem_of_a_file_in_one_run_text_and_json(home: Path, write: Write) -> None:
    bad = write("many.toml", 'descriptio = "typo"\n\n[[service]]\nname = "a"\n'
                'command = ["/bin/a"]\nstop_grace = true\n\n[[volume]]\npath = "relative"\n'
                'role = "system"\n')
    r = au(home, "config", "validate", str(bad))
    assert r.returncode == 3, r.stderr
    assert f"{bad}: 3 problems" in r.stderr
    for expected in (f"{bad}:1: descriptio: unknown setting", f"{bad}:6: service.a.stop_grace",
                     f"{bad}:9: volume"):
        assert expected in r.stderr, (expected, r.stderr)
    r = au(home, "config", "validate", str(bad), "--json")
    assert r.returncode == 3
    doc = json.loads(r.stdout)
    assert doc["valid"] is False and doc["source"] == str(bad)
    assert [p["line"] for p in doc["problems"]] == [1, 6, 9], doc["problems"]
    assert all(p["hint"] for p in doc["problems"])
    # The rules across settings are all reported too.
    twice = write("twice.toml", '[[volume]]\npath = "/opt/x"\nrole = "system"\n'
                  '[[volume]]\npath = "/opt/x"\nrole = "system"\n'
                  '[[service]]\nname = "s"\n[[service]]\nname = "s"\ncommand = ["/bin/s"]\n')
    r = au(home, "config", "validate", str(twice), "--json")
    problems = json.loads(r.stdout)["problems"]
    assert len(problems) >= 3, problems
    text = " ".join(p["message"] for p in problems)
    assert "listed twice" in text and "duplicate service name" in text


def test_config_new_writes_the_roles(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "new.toml"
    r = au(home, "config", "new", str(target), "--volume", "/var/lib/shop:data",
           "--volume", "/opt/shop", "--volume", "/srv/odd:name:system")
    assert r.returncode == 0, r.stderr
    doc = tomllib.loads(target.read_text())
    assert doc["volume"] == [
        {"path": "/var/lib/shop", "role": "data"}, {"path": "/opt/shop", "role": "system"},
        {"path": "/srv/odd:name", "role": "system"}]
    assert au(home, "config", "validate", str(target)).returncode == 0


def test_config_new_takes_the_role_a_volume_was_adopted_with(home: Path,
                                                             tmp_path: Path) -> None:
    data = tmp_path / "var-data"
    data.mkdir()
    (data / "orders").write_text("1\n")
    r = au(home, "volume", "adopt", str(data), "--role", "data")
    assert r.returncode == 0, r.stderr
    try:
        target = tmp_path / "adopted.toml"
        r = au(home, "config", "new", str(target), "--volume", str(data))
        assert r.returncode == 0, r.stderr
        assert tomllib.loads(target.read_text())["volume"] == [
            {"path": str(data), "role": "data"}]
    finally:
        assert au(home, "volume", "release", str(data).lstrip("/").replace("/", "-")
                  ).returncode == 0
