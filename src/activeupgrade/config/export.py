"""The schema as JSON Schema (``au config schema``) and as the Markdown reference
(``docs/configuration.md``), both derived from ``schema.FILE_SCHEMA``."""

from __future__ import annotations

from typing import Any

from activeupgrade.config.schema import DURATION_PATTERN, FILE_SCHEMA, Kind, Setting

SCHEMA_ID = "https://activeupgrade.invalid/schema/config.json"

_ABSPATH = {"type": "string", "pattern": "^/"}
_FILENAME = {"type": "string", "pattern": "^[^/]+$", "not": {"enum": [".", ".."]}}


def _json(setting: Setting) -> dict[str, Any]:
    kind = setting.kind
    out: dict[str, Any]
    match kind:
        case Kind.TEXT | Kind.LISTEN:
            out = {"type": "string"}
        case Kind.NAME:
            out = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._@-]*$"}
        case Kind.ABSPATH:
            out = dict(_ABSPATH)
            if setting.default == "":
                out = {"type": "string", "pattern": "^(/.*)?$"}
        case Kind.FILENAME:
            out = dict(_FILENAME)
        case Kind.BOOL:
            out = {"type": "boolean"}
        case Kind.INTEGER:
            out = {"type": "integer", "minimum": 1}
        case Kind.DURATION:
            out = {"oneOf": [{"type": "number", "minimum": 0},
                             {"type": "string", "pattern": DURATION_PATTERN}]}
        case Kind.ENUM:
            out = {"type": "string", "enum": list(setting.choices)}
        case Kind.ARGV | Kind.TEXT_LIST:
            out = {"type": "array", "items": {"type": "string"}}
        case Kind.PATH_LIST:
            out = {"type": "array", "items": _ABSPATH}
        case Kind.FILENAME_LIST:
            out = {"type": "array", "items": _FILENAME}
        case Kind.ENV:
            out = {"type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                   "additionalProperties": {"type": "string"}}
        case Kind.CIDR:
            out = {"type": "string", "pattern": "/[0-9]+$"}
        case Kind.TABLE:
            out = _object(setting)
        case Kind.TABLES:
            out = {"type": "array", "items": _object(setting)}
    out["description"] = setting.description
    if setting.default is not None and kind not in (Kind.TABLE, Kind.TABLES):
        out["default"] = setting.default
    if setting.example is not None:
        out["examples"] = [setting.example]
    return out


def _object(setting: Setting) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": {f.key: _json(f) for f in setting.fields},
        "additionalProperties": False,
    }
    required = [f.key for f in setting.fields if f.required]
    if required:
        out["required"] = required
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a configuration file."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Active Upgrade configuration file",
        **_json(FILE_SCHEMA),
    }


def _type_words(setting: Setting) -> str:
    if setting.kind is Kind.ENUM:
        return " \\| ".join(f"`{c}`" for c in setting.choices)
    return setting.kind.value


def _default_words(setting: Setting) -> str:
    if setting.required:
        return "**required**"
    if setting.default in (None, "", [], {}):
        return "—"
    if isinstance(setting.default, bool):
        return f"`{str(setting.default).lower()}`"
    return f"`{setting.default}`"


def markdown_reference() -> str:
    """Every setting in tables, one per section (for ``docs/configuration.md``)."""
    lines = []

    def section(setting: Setting, title: str) -> None:
        lines.extend(["", f"### `{title}`", "", setting.description, "",
                      "| Key | Type | Default | Meaning |", "|---|---|---|---|"])
        nested = []
        for f in setting.fields:
            if f.kind in (Kind.TABLE, Kind.TABLES):
                nested.append(f)
                lines.append(f"| `{f.key}` | see below | | {f.description} |")
            else:
                lines.append(f"| `{f.key}` | {_type_words(f)} | {_default_words(f)} | "
                             f"{f.description} |")
        for f in nested:
            brackets = ("[[", "]]") if f.kind is Kind.TABLES else ("[", "]")
            name = f"{title.strip('[]')}.{f.key}" if title != "top level" else f.key
            section(f, f"{brackets[0]}{name}{brackets[1]}")

    section(FILE_SCHEMA, "top level")
    kinds = ["", "### Value types", "", "| Type | Meaning |", "|---|---|"]
    kinds += [f"| {k.value} | {Setting('x', k, '').expected} |" for k in Kind
              if k not in (Kind.ENUM, Kind.TABLE, Kind.TABLES)]
    return "\n".join(lines + kinds) + "\n"
