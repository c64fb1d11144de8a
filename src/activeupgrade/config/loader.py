"""Loading TOML configuration files: the public entry points of the configuration part.

``load_file(path)`` reads a file and its children (``nesting.py``), checks each against the
schema (``schema.py``/``validate.py``) and merges them (``merge.py``) into a ``Config`` with
provenance and notices. Every problem is a ``ConfigError`` (or a ``SecurityError`` for an
unsafe file) naming file, line and setting; never a traceback.
"""

from __future__ import annotations

from pathlib import Path

from activeupgrade.config.merge import build_config
from activeupgrade.config.model import Config
from activeupgrade.config.nesting import read_tree
from activeupgrade.errors import ConfigError, SecurityError
from activeupgrade.instance import Instance


def load_file(path: Path) -> Config:
    """The effective configuration of ``path`` and its children."""
    try:
        return build_config(read_tree(Path(path)))
    except RecursionError:
        raise ConfigError(f"{path}: configuration too deeply nested",
                          hint="Flatten the include chain.") from None


def load_text(path: Path, text: str) -> Config:
    """The effective configuration ``path`` would have with ``text`` as its content (the
    children are read from ``path``'s folder); nothing is written."""
    try:
        return build_config(read_tree(Path(path), text))
    except RecursionError:
        raise ConfigError(f"{path}: configuration too deeply nested",
                          hint="Flatten the include chain.") from None


def resolve_in_folder(instance: Instance, name: str) -> Path:
    """A configuration named in an API request: an absolute path, or a bare name in the
    default folder (no current folder is involved).

    Only a file whose name ends in ``.toml`` is ever opened for the API: any other file the
    daemon can read (``/etc/shadow``) is refused before it is opened, so that neither its
    content nor its parse errors can be seen through the API; the file's whole path must
    be trusted too (``reader.read_settings``)."""
    if not name:
        raise ConfigError("no configuration file given", hint="Give a file name or path.")
    if "\x00" in name or len(name) > 4096:
        raise ConfigError("the configuration file name is not a path (a NUL character, or "
                          "longer than 4096 characters)", hint="Give a file name or path.")
    if name.startswith("/"):
        return _toml_only(Path(name))
    if "/" in name or name in (".", ".."):
        raise ConfigError(f"{name!r}: give an absolute path or a bare file name",
                          hint=f"Bare names are files of the default folder {instance.configs}.")
    candidate = instance.configs / name
    if not candidate.exists() and not name.endswith(".toml"):
        candidate = instance.configs / f"{name}.toml"
    return _toml_only(candidate)


def _toml_only(path: Path) -> Path:
    if not path.name.endswith(".toml") or path.name.startswith("."):
        raise SecurityError(
            f"{path}: refused: not a configuration file (the name does not end in .toml); "
            "other files are never opened for the API",
            hint="Name the configuration file NAME.toml.", details={"file": str(path)})
    return path


def resolve(instance: Instance, name: str) -> Path:
    """A configuration file named on the command line or in the API.

    A path with a ``/`` is taken as it is. A bare name is the file of that name in the
    current folder when there is one, else the file in the default configuration folder
    (``instance.configs``), with ``.toml`` added when missing.
    """
    if not name:
        raise ConfigError("no configuration file given", hint="Give a file name or path.")
    if "/" in name or name in (".", "..") or Path(name).exists():
        return Path(name).expanduser().absolute()
    candidate = instance.configs / name
    if not candidate.exists() and not name.endswith(".toml"):
        candidate = instance.configs / f"{name}.toml"
    return candidate
