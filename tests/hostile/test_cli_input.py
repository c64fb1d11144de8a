"""Bad numbers on the command line reach the API and come back as usage errors (issue:
`au log --limit 99999999999999999999` was an HTTP 500, `--limit -5` was accepted)."""

from __future__ import annotations

from pathlib import Path

from tests.support import au, new_instance


def test_log_limits(tmp_path: Path) -> None:
    home = new_instance(tmp_path / "home")
    try:
        for value, words in (("99999999999999999999", "`limit` must be from 1 to"),
                             ("-5", "must be 0 or more, got -5"),
                             ("abc", "invalid int value")):
            r = au(home, "log", "--limit", value)
            assert r.returncode == 2, (value, r.returncode, r.stderr)
            assert words in r.stderr and "hint:" in r.stderr, r.stderr
            assert "Traceback" not in r.stderr and "bug" not in r.stderr, r.stderr
    finally:
        au(home, "daemon", "--stop")
