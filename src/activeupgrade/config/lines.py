"""Where each table and key of a TOML file is written (``tomllib`` gives no line numbers).

A small line scanner: it follows ``[table]`` and ``[[array]]`` headers the way TOML resolves
them (a header below an array of tables refers to its last element) and records the line of
every ``key =`` assignment. Errors then name ``file:line`` for any setting path such as
``("service", 0, "health", "timeout")``; a path without a line of its own (a key inside an
inline table, a default) falls back to its nearest written ancestor.
"""

from __future__ import annotations

import re

PathKey = tuple[str | int, ...]

_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[|\[)\s*({_DOTTED})\s*(\]\]|\])\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=(.*)$")
_SPLIT = re.compile(_PART)


def split_dotted(text: str) -> list[str]:
    """``a."b.c".d`` → ``["a", "b.c", "d"]``."""
    parts = []
    for match in _SPLIT.finditer(text):
        part = match.group(0)
        if part[:1] in "\"'":
            part = part[1:-1]
        parts.append(part)
    return parts


class LineIndex:
    """Line numbers (1-based) of the tables and keys of one TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[PathKey, int] = {}
        arrays: dict[PathKey, int] = {}
        current: PathKey = ()
        open_quote = ""
        items: _Items | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if items is not None:
                # Inside a multi-line array value: only its items' lines are of interest.
                if items.feed(line, number):
                    continue
                items = None
                continue
            if open_quote:
                # Inside a multi-line string nothing is a key or a header.
                if line.count(open_quote) % 2 == 1:
                    open_quote = ""
                continue
            header = _HEADER.match(line)
            if header:
                current = self._header(header, arrays, number)
                continue
            key = _KEY.match(line)
            if key:
                parts = split_dotted(key.group(1))
                for end in range(1, len(parts) + 1):  # a dotted key creates its tables
                    self.lines.setdefault(current + tuple(parts[:end]), number)
                value = key.group(2)
                if value.lstrip().startswith("["):
                    scan = _Items(self.lines, current + tuple(parts))
                    if scan.feed(value, number):
                        items = scan
                    continue
                for quote in ('"""', "'''"):
                    if value.count(quote) % 2 == 1:
                        open_quote = quote
                        break

    def _header(self, match: re.Match[str], arrays: dict[PathKey, int], number: int) -> PathKey:
        keys = split_dotted(match.group(2))
        is_array = match.group(1) == "[["
        path: PathKey = ()
        for i, key in enumerate(keys):
            path = (*path, key)
            self.lines.setdefault(path, number)  # a header creates its parent tables too
            last = i == len(keys) - 1
            if path in arrays and not (is_array and last):
                path = (*path, arrays[path] - 1)
        if is_array:
            arrays[path] = arrays.get(path, 0) + 1
            self.lines.setdefault(path, number)
            path = (*path, arrays[path] - 1)
        self.lines.setdefault(path, number)
        return path

    def line_of(self, path: PathKey) -> int:
        """The line of ``path`` or of its nearest written ancestor; 0 when none is known."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return 0


class _Items:
    """Follows one array value over its lines, recording the line of each top-level item
    (so ``include[2]`` or ``backup.paths[3]`` point at their own line)."""

    def __init__(self, lines: dict[PathKey, int], path: PathKey) -> None:
        self.lines = lines
        self.path = path
        self.depth = 0
        self.index = 0
        self.expect = False
        self.quote = ""

    def feed(self, text: str, number: int) -> bool:
        """Scan one line; True while the array is still open after it."""
        i = 0
        while i < len(text):
            if self.quote:
                if text.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote = ""
                    continue
                i += 2 if text[i] == "\\" and self.quote[0] == '"' else 1
                continue
            c = text[i]
            if c == "#":
                break
            if self.depth == 1 and self.expect and c not in " \t,]":
                self.lines.setdefault((*self.path, self.index), number)
                self.expect = False
            if c in "\"'":
                self.quote = c * 3 if text.startswith(c * 3, i) else c
                i += len(self.quote)
                continue
            if c in "[{":
                self.depth += 1
                if self.depth == 1:
                    self.expect = True
            elif c in "]}":
                self.depth -= 1
                if self.depth <= 0:
                    return False
            elif c == "," and self.depth == 1:
                self.index += 1
                self.expect = True
            i += 1
        # A single-quoted string cannot span lines: a broken line ends it.
        if self.quote in ("\"", "'"):
            self.quote = ""
        return self.depth > 0
