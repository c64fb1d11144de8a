"""The programs a service and its health check run are trusted paths, checked before they
run (a real keeper, real files and modes)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from activeupgrade.config.model import HealthKind, HealthSpec, ServiceSpec
from activeupgrade.errors import SecurityError, ServiceError
from activeupgrade.platform.services import health, program
from activeupgrade.platform.services.supervisor import Supervisor


def script(path: Path, body: str = "import time\ntime.sleep(60)\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="trust is judged for root (owners root only)")
def test_a_program_in_a_folder_others_can_write_is_never_started(
        sup: Supervisor, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    app = script(shared / "app")
    shared.chmod(0o777)
    spec = ServiceSpec("app", command=(str(app),), start_timeout=10.0)
    with pytest.raises(SecurityError) as refused:
        sup.start(spec)
    assert f"{shared} is writable by others" in refused.value.message
    assert refused.value.hint == f"chmod go-w {shared}"
    assert sup.store.get_doc("services", "app") is None  # no keeper was even made
    shared.chmod(0o755)
    started = sup.start(spec)
    assert started.pid > 0 and sup.status(spec).running


def test_a_bare_name_is_the_file_its_own_path_finds_first(tmp_path: Path) -> None:
    first, second = script(tmp_path / "one" / "tool"), script(tmp_path / "two" / "tool")
    path = f"relative/dir:{tmp_path / 'none'}:{first.parent}:{second.parent}"
    assert program.resolve("tool", path=path) == first
    assert program.resolve("tool", path=str(tmp_path / "none")) is None
    assert program.resolve("./tool", path="", workdir=str(first.parent)) == first
    with pytest.raises(ServiceError, match="tool not found on the PATH"):
        program.trusted(["tool"], what="svc", env={"PATH": str(tmp_path / "none")})
    with pytest.raises(ServiceError, match="the command is empty"):
        program.trusted([], what="svc", env={})
    assert program.trusted(["tool"], what="svc", env={"PATH": path}) == first


@pytest.mark.skipif(os.geteuid() != 0, reason="trust is judged for root (owners root only)")
def test_a_health_command_anyone_could_replace_is_not_run(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    shared = tmp_path / "shared"
    check = script(shared / "check", f"open({str(ran)!r}, 'w').close()\n")
    shared.chmod(0o777)
    spec = HealthSpec(HealthKind.COMMAND, argv=(str(check),), timeout=10.0)
    healthy, seen = health.probe(spec)
    assert not healthy and f"health check: {check}: refused" in seen
    assert not ran.exists()
    shared.chmod(0o755)
    assert health.probe(spec) == (True, "exit 0")
    assert ran.exists()
