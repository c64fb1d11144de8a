"""The README's generated tables stay equal to what the code says."""

from __future__ import annotations

from pathlib import Path

from activeupgrade.docs import exit_code_table, transition_table

README = Path(__file__).resolve().parents[2] / "README.md"


def section(text: str, name: str) -> str:
    start = text.index(f"<!-- {name} -->") + len(f"<!-- {name} -->")
    return text[start : text.index(f"<!-- /{name} -->")].strip()


def test_exit_code_table_is_current() -> None:
    assert section(README.read_text(), "exit-codes") == exit_code_table()


def test_transition_table_is_current() -> None:
    assert section(README.read_text(), "transitions") == transition_table()
