"""pytest integration of the test host (imported by ``tests/conftest.py``).

- ``debian_host``: a booted host (systemd ``running``), the project installed (``au`` on
  its PATH), destroyed after the test even when it fails (its ``console.log`` stays in the
  test's ``tmp_path``). ``@pytest.mark.debian_host(recipe=NGINX, project=False,
  network=NetnsPath(...), loop_devices=True)`` changes what it gets.
- ``booted_host(recipe, workdir)``: the same as a context manager, for a fixture of wider
  scope that shares one host among several checks (``tmp_path_factory``).

A machine that cannot boot hosts (not root, a tool missing) skips these tests with the
reason; under ``CI=true`` that is a failure (``tests/support.cannot_run``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.host.machine import Host
from tests.host.network import Network
from tests.host.recipe import BASE, Recipe
from tests.support import cannot_run

TOOLS = {"systemd-nspawn": "systemd-container", "mmdebstrap": "mmdebstrap",
         "nsenter": "util-linux", "dpkg-scanpackages": "dpkg-dev", "apt-get": "apt"}


def host_problem() -> str:
    """Why this machine cannot boot test hosts ("" when it can)."""
    if os.geteuid() != 0:
        return "booting a test host needs root (systemd-nspawn)"
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            return f"needs `{tool}` (Debian package {package}; scripts/bootstrap.sh installs it)"
    return ""


@contextmanager
def booted_host(recipe: Recipe, workdir: Path, *, project: bool = True,
                network: Network | None = None, loop_devices: bool = False,
                area: Path | None = None,
                before_boot: Callable[[Host], None] | None = None) -> Iterator[Host]:
    """A booted host in ``workdir`` (fails unless systemd says ``running``), destroyed on
    exit. ``area``: see ``Host.create``; ``before_boot``: called with the host whose root
    is made, before it boots."""
    problem = host_problem()
    if problem:
        cannot_run(problem)
    host = Host.create(recipe, workdir, network=network, loop_devices=loop_devices, area=area)
    try:
        if before_boot is not None:
            before_boot(host)
        report = host.boot()
        assert report.state == "running", (
            f"test host {host.name} is {report.state}: failed units {list(report.failed)}")
        if project:
            host.install_project()
        yield host
    finally:
        host.destroy()


@pytest.fixture
def debian_host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """A booted Debian test host for one test (see the module docstring)."""
    marker = request.node.get_closest_marker("debian_host")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    recipe = options.pop("recipe", BASE)
    with booted_host(recipe, tmp_path / "host", **options) as host:
        yield host
