"""The generated sections of the docs stay equal to the code (schema, check catalogue)."""

from __future__ import annotations

from pathlib import Path

from activeupgrade.checks.catalogue import CHECKS, troubleshooting_table
from activeupgrade.config.export import markdown_reference

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section(text: str, name: str) -> str:
    start = text.index(f"<!-- {name} -->") + len(f"<!-- {name} -->")
    return text[start : text.index(f"<!-- /{name} -->")].strip()


def test_configuration_reference_is_current() -> None:
    text = (DOCS / "configuration.md").read_text()
    assert section(text, "config-reference") == markdown_reference().strip()


def test_troubleshooting_lists_every_check_id() -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    assert section(text, "check-table") == troubleshooting_table()
    for check in CHECKS:
        assert f"| {check.id} | `{check.name}` |" in text
