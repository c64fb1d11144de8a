"""Reading one configuration file: safety of the file, TOML syntax, schema.

The result is the file's normalised settings plus a ``Source`` for locating later problems
(duplicates, overlaps, includes) at their line.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activeupgrade import safepath
from activeupgrade.config.lines import LineIndex
from activeupgrade.config.schema import FILE_SCHEMA
from activeupgrade.config.validate import Checker, Source, located_error
from activeupgrade.errors import ConfigError, SecurityError

MAX_BYTES = 4 * 1024 * 1024
"""A configuration file is small; anything bigger is a mistake (wrong file)."""

_AT_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True)
class FileSettings:
    """One file's settings, checked against the schema."""

    source: Source
    data: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.source.path


def check_file_safety(path: Path, st: os.stat_result) -> None:
    """Refuse files others could have written: the tool runs what they name, as root."""
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(
            f"{path}: not a regular file", hint="Give the path of a TOML configuration file."
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SecurityError(
            f"{path}: refused: the file is writable by "
            + ("group and others" if st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_IWGRP
               else "others" if st.st_mode & stat.S_IWOTH else "its group")
            + f" (mode {stat.S_IMODE(st.st_mode):04o}); anyone who can write it could make "
            "the tool run their commands",
            hint=f"chmod go-w {path}",
            details={"file": str(path)},
        )
    if os.geteuid() == 0 and st.st_uid != 0:
        raise SecurityError(
            f"{path}: refused: the file is owned by uid {st.st_uid}, not root, and the tool "
            "runs as root",
            hint=f"chown root: {path}   (after checking its content)",
            details={"file": str(path)},
        )


def read_settings(path: Path) -> FileSettings:
    """Read, check and normalise one file (its includes are not followed here)."""
    try:
        # Every folder above the file must be trusted too: whoever can write one could put
        # their own file (or a link to a secret) in its place.
        with safepath.open_trusted(path, flags=os.O_RDONLY, check_final=False) as found:
            if stat.S_ISDIR(found.st.st_mode):
                raise IsADirectoryError(path)
            fh = open(os.dup(found.fd), "rb")
        with fh:
            check_file_safety(path, os.fstat(fh.fileno()))
            raw = fh.read(MAX_BYTES + 1)
    except SecurityError as exc:
        raise SecurityError(exc.message, hint=exc.hint,
                            details={**exc.details, "file": str(path)}) from None
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such configuration file",
            hint="Check the name; bare names are looked up in the default configuration "
            "folder (`au config show` lists where).",
            details={"file": str(path)},
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path}: is a folder, not a configuration file",
            hint="Give the path of a .toml file.", details={"file": str(path)},
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read: {exc.strerror or exc}",
            hint="Check the file's permissions.", details={"file": str(path)},
        ) from None
    except ValueError:  # a NUL character: no file can have this name
        raise ConfigError(f"{str(path)!r}: not a file name (it holds a NUL character)",
                          hint="Give the path of a TOML configuration file.",
                          details={"file": str(path)}) from None
    if len(raw) > MAX_BYTES:
        raise located_error(path, 0, "", f"larger than {MAX_BYTES} bytes: not a configuration "
                            "file", hint="Give the path of a TOML configuration file.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise located_error(path, line, "", "not valid UTF-8 text",
                            hint="Save the file as UTF-8.") from None
    return parse_text(path, text)


def parse_text(path: Path, text: str) -> FileSettings:
    """Check and normalise the TOML ``text`` of ``path``."""
    index = LineIndex(text)
    source = Source(path, index)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _AT_LINE.search(message)
        line = int(found.group(1)) if found else 0
        if not found and "end of document" in message:
            line = max(1, len(text.splitlines()))  # the last line is where it stops making sense
        reason = _AT_LINE.sub("", message).replace("(at end of document)", "at the end of "
                                                   "the file").strip() or "invalid TOML"
        col = f", column {found.group(2)}" if found else ""
        raise located_error(
            path, line, "", f"TOML syntax error{col}: {reason}",
            hint="Fix the syntax (strings in quotes, one key per line, [table] headers); "
            "see https://toml.io/en/v1.0.0",
        ) from None
    except RecursionError:
        raise located_error(path, 0, "", "TOML nesting too deep",
                            hint="Flatten the nested arrays or tables.") from None
    return FileSettings(source, Checker(source).check(data, FILE_SCHEMA))
