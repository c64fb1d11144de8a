"""The commented starting file written by ``au config new``, generated from the schema so
every setting appears with its description and default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from activeupgrade.config.schema import FILE_SCHEMA, Kind, Setting
from activeupgrade.durable import write_durably
from activeupgrade.errors import ConfigError


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def _commented(setting: Setting, prefix: str, out: list[str]) -> None:
    for f in setting.fields:
        if f.kind in (Kind.TABLE, Kind.TABLES):
            continue
        value = f.example if f.example is not None else f.default
        if value is None:
            value = ""
        need = " (required)" if f.required else ""
        out.append(f"# {f.key} = {_toml(value)}    # {f.description}{need}")
    for f in setting.fields:
        if f.kind not in (Kind.TABLE, Kind.TABLES):
            continue
        name = f"{prefix}.{f.key}" if prefix else f.key
        header = f"[[{name}]]" if f.kind is Kind.TABLES else f"[{name}]"
        out += ["", f"# {f.description}", f"# {header}"]
        _commented(f, name, out)


def template_text(volumes: list[tuple[str, str]] | None = None, description: str = "") -> str:
    """A valid starting file: the given volumes, everything else commented out."""
    out = [
        "# Active Upgrade configuration file (TOML).",
        "# Every setting is listed below with its default; remove the leading '# ' to use it.",
        "# Check it with `au config validate FILE`; see `au config schema` for the full schema.",
        "",
        f"description = {json.dumps(description or 'Describe this upgrade')}",
        "# include = [\"child.toml\"]    # child configurations, in this folder",
    ]
    for path, role in volumes or ():
        out += ["", "[[volume]]", f"path = {json.dumps(path)}", f"role = {json.dumps(role)}"]
    body: list[str] = []
    _commented(FILE_SCHEMA, "", body)
    out += [line for line in body if not line.startswith(("# description", "# include"))]
    return "\n".join(out) + "\n"


def write_template(path: Path, volumes: list[tuple[str, str]] | None = None,
                   description: str = "",
                   *, force: bool = False) -> None:
    """Write the starting file (mode 0644), refusing to overwrite unless ``force``."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists",
                          hint="Choose another name or pass --force to overwrite it.")
    text = template_text(volumes, description)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_durably(path, text.encode(), 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}",
                          hint="Check the folder exists and is writable.") from None
