"""Thousands of generated and mutated files: only ConfigError ever comes out, never a
traceback, and each error names the file (and the line whenever the file has content)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activeupgrade.config.loader import load_file
from activeupgrade.config.model import Config
from activeupgrade.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOP = (EXAMPLES / "shop.toml").read_text()
CHILD = (EXAMPLES / "shop-db.toml").read_text()
LINES = TOP.splitlines()

VALUES = st.sampled_from([
    "1", "-1", "0", "1.5", "nan", "inf", "true", "false", '""', '"x"', '"/abs"', '"rel/x"',
    "[]", '["a"]', "[1, 2]", "{}", '{ a = "b" }', "1979-05-27T07:32:00Z", '"30s"', '"1h30m"',
    '"soon"', '"127.0.0.1:80"', '"10.0.0.1/8"', '"\\u0000"', "[[]]", '"""multi\nline"""',
])
KEYS = st.sampled_from(["name", "path", "role", "command", "file", "control", "timing",
                        "listen", "kind", "target", "include", "stop_grace", "env", "packages",
                        "host_address", "backup", "service", "volume", "x", "descripton",
                        "service.name", "upgrade_side.hostname", "a.b.c"])


def _check(top: str | bytes, child: str | bytes = CHILD) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shop.toml"
        for name, content in (("shop.toml", top), ("shop-db.toml", child)):
            target = Path(folder) / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
            target.chmod(0o644)
        try:
            assert isinstance(load_file(path), Config)
        except ConfigError as err:
            assert err.details.get("file"), err.message
            assert str(err.details["file"]) in err.message
            assert err.message.startswith(str(Path(folder)))
            assert err.hint
            if err.details.get("line") == 0:
                # Only whole-file problems have no line.
                assert "larger than" in err.message or "too deep" in err.message, err.message


FAST = settings(max_examples=1500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@FAST
@given(st.integers(0, len(TOP)))
def test_truncations(at: int) -> None:
    _check(TOP[:at])
    _check(TOP, CHILD[: at % (len(CHILD) + 1)])


@FAST
@given(st.integers(0, len(LINES) - 1), VALUES)
def test_type_swaps(line: int, value: str) -> None:
    lines = list(LINES)
    key, sep, _ = lines[line].partition("=")
    lines[line] = f"{key}= {value}" if sep else f"x = {value}"
    _check("\n".join(lines) + "\n")


@FAST
@given(st.integers(0, len(LINES) - 1), st.integers(0, 30), st.characters(
    codec="utf-8", exclude_categories=("Cs",)))
def test_character_mutations(line: int, col: int, char: str) -> None:
    lines = list(LINES)
    text = lines[line]
    col = min(col, len(text))
    lines[line] = text[:col] + char + text[col + 1:]
    _check("\n".join(lines) + "\n")


@FAST
@given(st.lists(st.tuples(st.integers(0, len(LINES) - 1), st.sampled_from(
    ["delete", "duplicate", "key", "swap"]), KEYS), min_size=1, max_size=4))
def test_line_edits(edits: list[tuple[int, str, str]]) -> None:
    lines = list(LINES)
    for index, how, key in edits:
        index %= len(lines)
        if how == "delete":
            del lines[index]
        elif how == "duplicate":
            lines.insert(index, lines[index])
        elif how == "key":
            _, sep, value = lines[index].partition("=")
            lines[index] = f"{key} ={value}" if sep else f"[{key}]"
        else:
            other = (index * 7 + 3) % len(lines)
            lines[index], lines[other] = lines[other], lines[index]
        if not lines:
            lines = [""]
    _check("\n".join(lines) + "\n", "\n".join(reversed(CHILD.splitlines())))
