"""Following ``include`` (SPEC §8): children in the parent's folder, transitively.

Files are read in *reading order*: a file, then each of its children in ``include`` order,
each child followed by its own children (depth first). When two files give the same
setting, the one read first wins, so a parent always wins over its children. A file
included twice (a diamond) is read once. A loop is refused naming it
(``a.toml → b.toml → a.toml``); a missing child is refused naming the file and line that
include it.
"""

from __future__ import annotations

import os
from pathlib import Path

from activeupgrade.config.reader import FileSettings, parse_text, read_settings

MAX_FILES = 256
"""More files than this is a configuration mistake, not a real setup."""


def _key(path: Path) -> str:
    return os.path.realpath(path)


def read_tree(top: Path, top_text: str | None = None) -> list[FileSettings]:
    """Every file of the configuration rooted at ``top``, in reading order.

    ``top_text`` checks unsaved text as if it were ``top`` (its children are read from
    ``top``'s folder).
    """
    order: list[FileSettings] = []
    seen: set[str] = set()

    def visit(path: Path, stack: list[tuple[Path, str]]) -> None:
        settings = (parse_text(path, top_text) if top_text is not None and not stack
                    else read_settings(path))
        order.append(settings)
        seen.add(_key(path))
        chain = [*stack, (path, _key(path))]
        for i, name in enumerate(settings.data.get("include", [])):
            child = path.parent / name
            at = ("include", i)
            looped = [p for p, k in chain if k == _key(child)]
            if looped:
                start = next(j for j, (_, k) in enumerate(chain) if k == _key(child))
                loop = " → ".join(p.name for p, _ in chain[start:]) + f" → {child.name}"
                raise settings.source.error(
                    at, f"include[{i + 1}]",
                    f"include loop: {loop}",
                    hint=f"Remove {name!r} from the include list of {path.name} (or the "
                    "include that leads back to it); a configuration cannot contain itself.",
                )
            if _key(child) in seen:
                continue  # a diamond: already read through another parent
            if not child.is_file():
                raise settings.source.error(
                    at, f"include[{i + 1}]",
                    f"child configuration {name!r} not found in {path.parent} "
                    f"(included by {path.name})",
                    hint=f"Create {child}, or remove {name!r} from the include list of "
                    f"{path.name}. Children must be in the same folder as their parent.",
                )
            if len(order) >= MAX_FILES:
                raise settings.source.error(
                    at, f"include[{i + 1}]", f"more than {MAX_FILES} configuration files",
                    hint="Merge some children into their parents.",
                )
            visit(child, chain)

    visit(Path(os.path.abspath(top)), [])
    return order
