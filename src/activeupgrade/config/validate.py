"""Checking one parsed TOML document against ``FILE_SCHEMA``.

Every problem becomes one ``ConfigError`` naming the file, the line, the setting, what was
expected and what was found, with a hint saying what to write instead. Values come out
normalised: durations in seconds, paths without trailing slashes, enums as their words.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activeupgrade.config.lines import LineIndex, PathKey
from activeupgrade.config.schema import DURATION_PATTERN, Kind, Setting
from activeupgrade.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Bad(Exception):
    """A value does not fit its setting (turned into a located ConfigError)."""

    def __init__(self, problem: str = "") -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Source:
    """One configuration file's text, for locating problems in it."""

    path: Path
    index: LineIndex

    def line(self, at: PathKey) -> int:
        return self.index.line_of(at)

    def error(
        self, at: PathKey, field: str, problem: str, *, expected: str = "", hint: str = ""
    ) -> ConfigError:
        """A ConfigError at ``at`` (a raw TOML path) for the setting shown as ``field``."""
        return located_error(self.path, self.line(at), field, problem, expected=expected,
                             hint=hint)


def located_error(
    path: Path, line: int, field: str, problem: str, *, expected: str = "", hint: str = ""
) -> ConfigError:
    where = f"{path}:{line}" if line else str(path)
    text = f"{where}: {field}: {problem}" if field else f"{where}: {problem}"
    if expected:
        text += f" (expected {expected})"
    return ConfigError(
        text,
        hint=hint or (f"Edit {'line ' + str(line) + ' of ' if line else ''}{path}, then run "
                      f"`au config validate {path}`."),
        details={"file": str(path), "line": line, "field": field, "expected": expected},
    )


def describe(value: Any) -> str:
    """A found value, in words, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__.replace('datetime', 'date/time')}"


def parse_duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Bad()
    if isinstance(value, str):
        text = value.strip()
        if not _DURATION.match(text):
            raise Bad()
        return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise Bad("durations are finite and not negative")
    return seconds


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise Bad("contains a NUL character")
    return text


def abspath(value: Any) -> str:
    if not isinstance(value, str):
        raise Bad()
    _no_nul(value)
    if not value.startswith("/"):
        raise Bad(f"{value!r} is a relative path")
    if ".." in value.split("/"):
        raise Bad(f"{value!r} contains '..'")
    return posixpath.normpath(value).replace("//", "/")


def filename(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Bad()
    _no_nul(value)
    if "/" in value or value in (".", ".."):
        raise Bad(f"{value!r} is not a plain file name (children live in the same folder)")
    return value


def listen_address(value: Any) -> str:
    if not isinstance(value, str):
        raise Bad()
    _no_nul(value)
    if value.startswith("/"):
        return abspath(value)
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise Bad(f"{value!r} has no valid port (1-65535)")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise Bad(f"{host} is not an IPv6 address") from None
        return value
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise Bad(f"{host!r} is not an IPv4 address or a host name") from None
    return value


def cidr(value: Any) -> str:
    if not isinstance(value, str) or "/" not in value:
        raise Bad()
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError:
        raise Bad(f"{value!r} is not an address with a prefix length") from None


def _scalar(setting: Setting, value: Any) -> Any:
    kind = setting.kind
    if kind is Kind.TEXT:
        if not isinstance(value, str):
            raise Bad()
        return value
    if kind is Kind.NAME:
        if not isinstance(value, str) or not _NAME.match(value):
            raise Bad()
        return value
    if kind is Kind.ABSPATH:
        if value == "" and setting.default == "":
            return ""
        return abspath(value)
    if kind is Kind.FILENAME:
        return filename(value)
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise Bad()
        return value
    if kind is Kind.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise Bad()
        return value
    if kind is Kind.DURATION:
        return parse_duration(value)
    if kind is Kind.ENUM:
        if not isinstance(value, str) or value not in setting.choices:
            raise Bad()
        return value
    if kind is Kind.LISTEN:
        return listen_address(value)
    if kind is Kind.CIDR:
        return cidr(value)
    raise AssertionError(f"not a scalar kind: {kind}")


_ITEM = {
    Kind.ARGV: Kind.TEXT,
    Kind.TEXT_LIST: Kind.TEXT,
    Kind.PATH_LIST: Kind.ABSPATH,
    Kind.FILENAME_LIST: Kind.FILENAME,
}


def several(path: Path, errors: list[ConfigError]) -> ConfigError:
    """One ConfigError reporting every problem of ``path`` (one per line, in file order);
    its details list each (``errors``: message, hint, file, line, field, expected)."""
    if len(errors) == 1:
        return errors[0]
    ordered = sorted(errors, key=lambda e: int(e.details.get("line") or 0))
    text = f"{path}: {len(ordered)} problems\n" + "\n".join(e.message for e in ordered)
    return ConfigError(
        text, hint=f"Fix each of them in {path}, then run `au config validate {path}`.",
        details={"file": str(path), "line": ordered[0].details.get("line", 0),
                 "errors": [{"message": e.message, "hint": e.hint, **e.details}
                            for e in ordered]},
    )


class Checker:
    """Walks one document; ``check()`` returns the normalised tree or raises one
    ConfigError naming every problem found (``several``)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.errors: list[ConfigError] = []

    def check(self, data: dict[str, Any], schema: Setting) -> dict[str, Any]:
        out = self._table(data, schema, (), "")
        if self.errors:
            raise several(self.source.path, self.errors)
        return out

    def _table(
        self, data: dict[str, Any], schema: Setting, at: PathKey, label: str
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        known = [f.key for f in schema.fields]
        for key, value in data.items():
            setting = schema.field(key)
            shown = f"{label}.{key}" if label else key
            if setting is None:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                where = f"in [{label}]" if label else "at the top level"
                self.errors.append(self.source.error(
                    (*at, key), shown, f"unknown setting {key!r} {where}"
                    + (f"; did you mean {close[0]!r}?" if close else ""),
                    expected="one of " + ", ".join(known),
                    hint=(f"Rename it to {close[0]!r}" if close else "Remove it")
                    + " (see `au config schema` for every setting).",
                ))
                continue
            try:
                out[key] = self._value(setting, value, (*at, key), shown)
            except ConfigError as exc:
                self.errors.append(exc)  # and go on: every problem in one run
        for setting in schema.fields:
            if setting.required and setting.key not in data:
                self.errors.append(self.source.error(
                    at, f"{label}.{setting.key}" if label else setting.key,
                    f"missing required setting {setting.key!r}", expected=setting.expected,
                    hint=f"Add {setting.key} = {_example(setting)} to this table.",
                ))
        return out

    def _value(self, setting: Setting, value: Any, at: PathKey, shown: str) -> Any:
        kind = setting.kind
        if kind is Kind.TABLE:
            if not isinstance(value, dict):
                raise self._bad(setting, value, at, shown, "")
            return self._table(value, setting, at, shown)
        if kind is Kind.TABLES:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise self._bad(setting, value, at, shown, "")
            items = []
            for i, item in enumerate(value):
                name = item.get("name")
                if name is None and isinstance(item.get("file"), str):
                    name = posixpath.basename(item["file"])  # an action's default name
                label = f"{shown}.{name}" if isinstance(name, str) and _NAME.match(name) else (
                    f"{shown}[{i + 1}]")
                items.append(self._table(item, setting, (*at, i), label))
            return items
        if kind is Kind.ENV:
            if not isinstance(value, dict):
                raise self._bad(setting, value, at, shown, "")
            env: dict[str, str] = {}
            for k, v in value.items():
                if not _ENV_NAME.match(k) or not isinstance(v, str) or "\x00" in v:
                    raise self.source.error(
                        (*at, k), f"{shown}.{k}", f"{describe(v)} is not a valid variable",
                        expected="NAME = \"string\" with NAME made of letters, digits, _",
                    )
                env[k] = v
            return env
        if kind in _ITEM:
            if not isinstance(value, list):
                raise self._bad(setting, value, at, shown, "")
            item_setting = Setting(setting.key, _ITEM[kind], "", default=None)
            result = []
            for i, item in enumerate(value):
                try:
                    result.append(_no_nul(_scalar(item_setting, item)))
                except Bad as exc:
                    raise self._bad(item_setting, item, (*at, i), f"{shown}[{i + 1}]",
                                    exc.problem, example=setting) from None
            return result
        try:
            return _scalar(setting, value)
        except Bad as exc:
            raise self._bad(setting, value, at, shown, exc.problem) from None

    def _bad(
        self, setting: Setting, value: Any, at: PathKey, shown: str, problem: str,
        example: Setting | None = None,
    ) -> ConfigError:
        example = example or setting
        return self.source.error(
            at, shown, problem or f"found {describe(value)}", expected=setting.expected,
            hint=f"Write for example {example.key} = {_example(example)}",
        )


def _example(setting: Setting) -> str:
    if setting.example is not None:
        return json.dumps(setting.example)
    if setting.kind is Kind.ENUM:
        return json.dumps(setting.choices[0])
    if setting.kind is Kind.DURATION:
        return '"30s"'
    if setting.kind is Kind.TABLE:
        return "{ ... }"
    if setting.default not in (None, "", [], {}):
        return json.dumps(setting.default)
    return {
        Kind.ABSPATH: '"/opt/app"', Kind.NAME: '"app"', Kind.LISTEN: '"127.0.0.1:8080"',
        Kind.CIDR: '"169.254.77.1/30"', Kind.FILENAME_LIST: '["child.toml"]',
        Kind.BOOL: "true", Kind.INTEGER: "1",
    }.get(setting.kind, '"..."')
