"""The generated sections of the docs stay equal to the code (schema, check catalogue)."""

from __future__ import annotations

import os
from pathlib import Path

from activeupgrade.checks.catalogue import CHECKS, troubleshooting_table
from activeupgrade.config.export import markdown_reference

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section(text: str, name: str) -> str:
    start = text.index(f"<!-- {name} -->") + len(f"<!-- {name} -->")
    return text[start : text.index(f"<!-- /{name} -->")].strip()


def current(doc: str, name: str, body: str) -> str:
    """The section ``name`` of ``doc``; with AU_UPDATE_DOCS=1 it is rewritten first."""
    path = DOCS / doc
    text = path.read_text()
    if os.environ.get("AU_UPDATE_DOCS") == "1":
        start = text.index(f"<!-- {name} -->") + len(f"<!-- {name} -->")
        end = text.index(f"<!-- /{name} -->")
        text = f"{text[:start]}\n{body}\n{text[end:]}"
        path.write_text(text)
    return section(text, name)


def test_configuration_reference_is_current() -> None:
    body = markdown_reference().strip()
    assert current("configuration.md", "config-reference", body) == body


def test_troubleshooting_lists_every_check_id() -> None:
    assert current("troubleshooting.md", "check-table", troubleshooting_table()) == \
        troubleshooting_table()
    text = (DOCS / "troubleshooting.md").read_text()
    for check in CHECKS:
        assert f"| {check.id} | `{check.name}` |" in text
