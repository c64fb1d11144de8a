"""Shared fixtures.

``needs_root``: tests that need root and Linux namespaces. Elsewhere they skip with the
reason; under ``CI=true`` (CI runs as root) a skip would hide a missing feature, so it fails.

``debian_host``: a booted Debian test host with the project installed (``tests/host``);
``@pytest.mark.debian_host(recipe=...)`` chooses its recipe.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.host.fixtures import debian_host  # noqa: F401  (the booted Debian test host)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _root_problem() -> str:
    if os.geteuid() != 0:
        return "needs root (mount/network/PID namespaces, bind mounts)"
    for tool in ("unshare", "nsenter", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"needs the `{tool}` program"
    return ""


@pytest.fixture
def needs_root() -> None:
    problem = _root_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but this test cannot run: {problem}")
        pytest.skip(problem)


@pytest.fixture
def au_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh instance folder, set as AU_HOME for the test."""
    home = tmp_path / "au-home"
    home.mkdir()
    monkeypatch.setenv("AU_HOME", str(home))
    yield home
