"""The collection's modules against a real local instance (``au`` of this checkout).

The collection is built and installed with ``ansible-galaxy``; plays run on ``localhost``
with the local connection. The instance has the test service's software as a system
volume, a data volume and the supervised HTTP service (a held socket on a loopback port),
so a merge has a real switchover to measure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.playbook import Ansible, installed_collection
from tests.support import (
    au,
    end_instance,
    free_port,
    service_toml,
    software_folder,
    volume_toml,
)

pytestmark = pytest.mark.usefixtures("needs_root")

READY = """#!/bin/sh
# The shop's readiness check: refuses the merge of software that has the file $1.
if [ "$ACTIVE_UPGRADE_REQUEST" = PrepareMerge ] && [ -e "$1" ]; then
    echo "the shop is not ready: $1 exists" >&2
    exit 1
fi
"""
ACTION = """
[[action]]
name = "shop-ready"
file = "%s"
args = ["%s"]
control = "readiness-check"
"""


@pytest.fixture(scope="module")
def ansible(tmp_path_factory: pytest.TempPathFactory) -> Ansible:
    work = tmp_path_factory.mktemp("ansible")
    return Ansible(installed_collection(work), work)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    software = software_folder(tmp_path, version="v1")
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    ready = software / "ready.sh"
    ready.write_text(READY)
    ready.chmod(0o755)
    cfg = tmp_path / "shop.toml"
    cfg.write_text(volume_toml(software) + volume_toml(data, "data") + service_toml(
        port, [sys.executable, f"{software}/httpapp.py", "--version-file",
               f"{software}/VERSION"]) + ACTION % (ready, software / "NOT-READY"))
    for path, role in ((software, "system"), (data, "data")):
        r = au(home, "volume", "adopt", str(path), "--role", role)
        assert r.returncode == 0, r.stderr
    assert au(home, "config", "load", str(cfg)).returncode == 0
    assert au(home, "service", "start", "shop").returncode == 0
    yield home
    status = json.loads(au(home, "status", "--json").stdout or "{}")
    if status.get("upgrade_state") not in ("Idle", None):
        au(home, "abort")
        au(home, "finish")
    end_instance(home)
    for path in (software, data):
        au(home, "volume", "release", str(path))
    au(home, "daemon", "--stop")


def play(tmp_path: Path, home: Path, tasks: list[dict[str, Any]], name: str = "play") -> Path:
    """A play on localhost whose tasks (module name → arguments) all get ``au_home``."""
    steps = []
    for i, task in enumerate(tasks):
        ((module, args),) = ((k, v) for k, v in task.items() if k not in ("register",
                                                                            "ignore_errors"))
        step: dict[str, Any] = {"name": f"step {i}", module: {**args, "au_home": str(home)}}
        step.update({k: v for k, v in task.items() if k in ("ignore_errors",)})
        steps.append(step)
    doc = [{"name": name, "hosts": "localhost", "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable}, "tasks": steps}]
    path = tmp_path / f"{name}.yml"
    path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
    return path


AU = "activeupgrade.fleet.active_upgrade"
STATUS = "activeupgrade.fleet.active_upgrade_status"


def status_of(home: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(au(home, "status", "--json").stdout)
    return out


def test_status_facts(ansible: Ansible, instance: Path, tmp_path: Path) -> None:
    done = ansible.playbook(play(tmp_path, instance, [{STATUS: {"probe": True}}]),
                            "localhost,")
    assert done.returncode == 0, done.output
    (result,) = done.results("localhost")
    facts = result["ansible_facts"]["active_upgrade"]
    assert result["changed"] is False
    assert facts["upgrade_state"] == "Idle" and facts["operational_state"] == "Ready"
    assert facts["duplex"] is True and facts["allowed_actions"] == ["check", "split"]
    assert sorted(v["role"] for v in facts["volumes"]) == ["data", "system"]
    assert [(s["name"], s["running"], s["healthy"]) for s in facts["services"]] == [
        ("shop", True, True)]
    assert facts["pending_resync"]["bytes"] == 0
    assert result["status"]["upgrade_state"] == "Idle"


def test_a_whole_session_is_idempotent(ansible: Ansible, instance: Path,
                                       tmp_path: Path) -> None:
    software = tmp_path / "opt-shop"
    install = {"action": "exec", "argv": ["sh", "-c", f"echo v2 > {software}/VERSION"],
               "unless": ["grep", "-qx", "v2", f"{software}/VERSION"]}
    tasks: list[dict[str, Any]] = []
    for step in ({"action": "split"}, install, {"action": "merge"}, {"action": "commit"},
                 {"action": "finish"}):
        tasks += [{AU: step}, {AU: step}]
    done = ansible.playbook(play(tmp_path, instance, tasks), "localhost,")
    assert done.returncode == 0, done.output
    got = done.results("localhost")
    # Every action changes the host once; asked again, it finds the host there already.
    assert [r["changed"] for r in got] == [True, False] * 5
    assert [r["upgrade_state"] for r in got] == [
        "Split", "Split", "Split", "Split", "Merge", "Merge", "Commit", "Commit", "Idle",
        "Idle"]
    assert got[3].get("skipped_because") == "unless exited 0"
    merge = got[4]
    assert [d["service"] for d in merge["disruption"]] == ["shop"]
    assert merge["disruption_seconds"] == max(d["gap_seconds"] for d in merge["disruption"])
    assert {p["request"] for p in merge["progress"]} <= {"PrepareMerge", "ExecuteMerge"}
    assert (software / "VERSION").read_text() == "v2\n"
    status = status_of(instance)
    assert (status["upgrade_state"], status["operational_state"], status["duplex"]) == (
        "Idle", "Ready", True)


def test_check_mode_runs_the_plan_and_changes_nothing(ansible: Ansible, instance: Path,
                                                      tmp_path: Path) -> None:
    # A whole session in check mode: each later action counts as possible from Idle.
    tasks: list[dict[str, Any]] = [
        {AU: {"action": "split"}}, {AU: {"action": "exec", "argv": ["true"]}},
        {AU: {"action": "merge"}}, {AU: {"action": "commit"}}, {AU: {"action": "finish"}}]
    done = ansible.playbook(play(tmp_path, instance, tasks), "localhost,", check=True)
    assert done.returncode == 0, done.output
    got = done.results("localhost")
    # (finish: the instance is in Idle, where finish leads, already)
    assert [r["changed"] for r in got] == [True] * 4 + [False]
    result = got[0]
    requests = [a["request"] for a in result["plan"]["actions"]]
    assert requests[:3] == ["CheckReadiness", "PrepareSplit", "ExecuteSplit"]
    assert "disruption" in result["plan"]
    assert all([a["request"] for a in r["plan"]["actions"]] == requests for r in got[:4])
    assert status_of(instance)["upgrade_state"] == "Idle"
    history = au(instance, "history", "--json")
    assert history.returncode == 0 and json.loads(history.stdout) == []


def test_failures_carry_the_tools_message_hint_and_exit_code(
        ansible: Ansible, instance: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-instance"
    tasks: list[dict[str, Any]] = [
        {AU: {"action": "merge"}, "ignore_errors": True},
        {AU: {"action": "split"}},
        {AU: {"action": "exec", "argv": ["sh", "-c", "echo broken >&2; exit 3"]},
         "ignore_errors": True},
        {AU: {"action": "abort"}},
        {AU: {"action": "finish"}},
    ]
    path = play(tmp_path, instance, tasks)
    done = ansible.playbook(path, "localhost,")
    assert done.returncode == 0, done.output
    refused, _split, failed_exec, aborted, _finish = done.results("localhost")
    assert refused["run_status"] == "failed"
    assert refused["msg"] == "`merge` is not allowed in Idle / Ready"
    assert (refused["hint"], refused["exit_code"]) == ("Allowed now: check, split.", 4)
    assert failed_exec["run_status"] == "failed" and failed_exec["exit_code"] == 3
    assert failed_exec["msg"] == "sh exited 3 inside the Upgrade Side"
    assert "broken" in failed_exec["stderr"]
    assert aborted["changed"] is True and aborted["upgrade_state"] == "Abort"
    # A failure of au itself: its message, hint and exit code as it printed them.
    lone = play(tmp_path, missing, [{STATUS: {}}], name="missing")
    done = ansible.playbook(lone, "localhost,")
    assert done.returncode != 0
    (result,) = done.results("localhost")
    expected = au(missing, "status")
    assert expected.returncode == 5
    message = expected.stderr.splitlines()[0].removeprefix("au: error: ")
    assert (result["msg"], result["exit_code"]) == (message, 5)
    assert result["hint"] and result["hint"] in expected.stderr


def test_a_broken_request_fails_the_task_and_abort_recovers(
        ansible: Ansible, instance: Path, tmp_path: Path) -> None:
    tasks: list[dict[str, Any]] = [
        {AU: {"action": "split"}},
        {AU: {"action": "exec", "argv": ["touch", str(tmp_path / "opt-shop/NOT-READY")]}},
        {AU: {"action": "merge"}, "ignore_errors": True},
        {STATUS: {}},
        {AU: {"action": "abort"}},
        {AU: {"action": "finish"}},
    ]
    done = ansible.playbook(play(tmp_path, instance, tasks), "localhost,")
    assert done.returncode == 0, done.output
    _split, _install, merge, status, abort, finish = done.results("localhost")
    broken = status["ansible_facts"]["active_upgrade"]
    assert broken["operational_state"] == "Broken"
    error = broken["error"]
    # The task failed with the error that broke the request, as the status holds it.
    assert merge["run_status"] == "failed"
    assert (merge["msg"], merge["hint"], merge["exit_code"], merge["error"]) == (
        error["message"], error["hint"], error["exit_code"], error["error"])
    assert merge["exit_code"] != 0 and merge["details"]["request"] == "PrepareMerge"
    assert (abort["changed"], abort["upgrade_state"]) == (True, "Abort")
    assert (finish["changed"], finish["upgrade_state"]) == (True, "Idle")
    assert [s["outcome"] for s in json.loads(au(instance, "history", "--json").stdout)] == [
        "aborted"]
