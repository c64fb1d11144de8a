"""Helpers shared by the tests that drive ``au`` through its entry point.

- ``au(home, *args)``: run the CLI (``python -m activeupgrade``) with ``AU_HOME=home``;
- ``new_instance(home)``: ``au init`` (only an instance created on purpose exists);
- ``HTTPAPP`` and ``service_toml``: the small socket-activated HTTP test service and the
  ``[[service]]`` block that runs it on a loopback port; ``volume_toml``,
  ``DIRECTORY_SIDE``: the rest of a small configuration;
- ``free_port``, ``port_open``: loopback ports;
- ``wait_until``: poll a condition with a deadline;
- ``end_instance``: the teardown of an instance a test started (keepers, daemon).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HTTPAPP = Path(__file__).parent / "services" / "httpapp.py"
"""The test service: answers ``GET /`` with ``<version> <pid>`` on the socket it is given."""


def au(home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
       timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``au ARGS`` with ``AU_HOME=home`` (plus ``env``); ``check`` asserts exit 0.

    An engine fault hook (``AU_FAULT_PAUSE``) is never inherited from the test's own
    environment: a test that wants one passes it in ``env``.
    """
    base = {k: v for k, v in os.environ.items() if k != "AU_FAULT_PAUSE"}
    if args[:1] in (("commit",), ("abort",)) and "--no-confirm-flag" not in args:
        # Without a terminal, commit and an abort from Merge need --yes (the tests that
        # check the refusal pass --no-confirm-flag, which is dropped here).
        args = (*args, "--yes")
    args = tuple(a for a in args if a != "--no-confirm-flag")
    r = subprocess.run(
        [sys.executable, "-m", "activeupgrade", *args], capture_output=True, text=True,
        env={**base, "AU_HOME": str(home), **(env or {})}, timeout=timeout,
        stdin=subprocess.DEVNULL, cwd=cwd,
    )
    if check:
        assert r.returncode == 0, f"au {' '.join(args)}: {r.stderr}"
    return r


def new_instance(home: Path) -> Path:
    """Create the instance ``home`` on purpose (``au init``), as an operator does first."""
    au(home, "init", check=True)
    return home


DIRECTORY_SIDE = '\n[upgrade_side]\nisolation = "directory"\n'
"""An Upgrade Side without namespaces (a working directory): sessions run without root."""


def volume_toml(path: Path, role: str = "system") -> str:
    """A ``[[volume]]`` block."""
    return f'\n[[volume]]\npath = "{path}"\nrole = "{role}"\n'


def software_folder(parent: Path, version: str = "") -> Path:
    """``parent/opt-shop``: the test service's software (``httpapp.py``; a ``VERSION`` file
    when ``version`` is given), to be adopted as a system volume."""
    software = parent / "opt-shop"
    software.mkdir()
    shutil.copy(HTTPAPP, software / "httpapp.py")
    if version:
        (software / "VERSION").write_text(f"{version}\n")
    return software


def service_toml(port: int, command: Sequence[str], *, name: str = "shop",
                 health_timeout: str = "") -> str:
    """The ``[[service]]`` block of a supervised HTTP service on ``127.0.0.1:port`` (one
    held socket ``http``, HTTP health check, 5 s stop grace, 20 s start timeout)."""
    argv = ", ".join(f'"{a}"' for a in command)
    timeout = f'timeout = "{health_timeout}"\n' if health_timeout else ""
    return (
        f'\n[[service]]\nname = "{name}"\ncommand = [{argv}]\n'
        'stop_grace = "5s"\nstart_timeout = "20s"\n'
        f'\n[[service.socket]]\nname = "http"\nlisten = "127.0.0.1:{port}"\n'
        f'\n[service.health]\nkind = "http"\ntarget = "http://127.0.0.1:{port}/"\n{timeout}'
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port (False only when refused)."""
    with socket.socket() as s:
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return False
    return True


def wait_until(ready: Callable[[], bool], timeout: float, what: str,
               poll: float = 0.02) -> None:
    """Poll ``ready`` until it is true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(poll)


def end_instance(home: Path, services: Sequence[str] = ("shop",)) -> None:
    """Teardown: end the keepers of ``services`` (``au service stop --release``) and the
    daemon. A keeper the CLI could not end (a failed test left a session open) is shut
    down through the supervisor, so that no test leaves a process holding a port."""
    for name in services:
        au(home, "service", "stop", name, "--release")
    au(home, "daemon", "--stop")
    deadline = time.monotonic() + 15
    while (home / "api.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    from activeupgrade.config.model import ServiceSpec
    from activeupgrade.instance import Instance
    from activeupgrade.platform.services.supervisor import NAMESPACE, Supervisor
    from activeupgrade.store.db import Store

    instance = Instance(home)
    if not instance.db.exists():
        return
    store = Store(instance.db)
    try:
        supervisor = Supervisor(instance, store)
        for name in services:
            if store.get_doc(NAMESPACE, name) is not None:
                supervisor.shutdown(ServiceSpec(name=name, stop_grace=2))
    finally:
        store.close()


def cannot_run(reason: str) -> None:
    """Skip a test this machine cannot run — but under CI=true (root, every package
    installed) a skip would hide a missing feature, so it fails instead."""
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but this test cannot run: {reason}")
    pytest.skip(reason)
