"""Sessions without a configuration file, with the volumes given on the command line.

``au check|plan|split --volume PATH[:ROLE] ...`` writes an ordinary configuration file
holding just those volumes under ``AU_HOME/cmdline/`` (named by its content, so the same
selection gives the same file) and uses it like any other: it is validated, staged at split
and shown by ``au status``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from activeupgrade.config.loader import load_file
from activeupgrade.config.model import VolumeRole
from activeupgrade.durable import write_durably
from activeupgrade.errors import ConfigError
from activeupgrade.instance import Instance


def parse_volume(text: str) -> tuple[str, VolumeRole]:
    """``/opt/shop`` → (``/opt/shop``, system); ``/var/lib/shop:data`` → (..., data)."""
    path, sep, role = text.rpartition(":")
    if sep and role in {r.value for r in VolumeRole}:
        return path, VolumeRole(role)
    return text, VolumeRole.SYSTEM


def volumes_text(volumes: list[str]) -> str:
    lines = ['description = "volumes given on the command line"', ""]
    for item in volumes:
        path, role = parse_volume(item)
        lines += ["[[volume]]", f"path = {json.dumps(path)}", f"role = {json.dumps(role.value)}",
                  ""]
    return "\n".join(lines)


def volumes_file(instance: Instance, volumes: list[str]) -> Path:
    """A configuration file selecting ``volumes`` (checked like any file); its path."""
    if not volumes:
        raise ConfigError("no volume given", hint="Give --volume PATH[:system|data].")
    text = volumes_text(volumes)
    folder = instance.home / "cmdline"
    path = folder / f"volumes-{hashlib.sha256(text.encode()).hexdigest()[:12]}.toml"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_durably(path, text.encode(), 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}",
                          hint="Check the instance folder's permissions.") from None
    try:
        load_file(path)
    except ConfigError as exc:
        # Name the command-line argument, not the generated file.
        raise ConfigError(
            "--volume: " + exc.message.split(": ", 2)[-1],
            hint="Give absolute paths of folders that do not overlap, e.g. "
            "--volume /opt/shop --volume /var/lib/shop:data.",
            details=exc.details,
        ) from None
    return path
