"""Custom actions through the real engine (Production-side actions at CheckReadiness)."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import pytest

from activeupgrade.config.model import ActionSpec, Config, ControlType, Timing, VolumeSpec
from activeupgrade.errors import ActionError, SecurityError
from activeupgrade.model.states import OperationalState, OperatorAction, Request, Side
from activeupgrade.platform.actions import security
from activeupgrade.platform.actions.env import substitute
from activeupgrade.platform.actions.runner import parse_progress
from tests.support import cannot_run

from .helpers import act, make_engine, records, write_recorder, write_script


def cfg_with(tmp_path: Path, *actions: ActionSpec) -> Config:
    return Config(volumes=(VolumeSpec(str(tmp_path / "opt")),), actions=actions,
                  source="/etc/activeupgrade/configs/test.toml")


def test_env_substitution_and_order(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    rec = write_recorder(tmp_path / "opt" / "rec", log)
    acts = (
        ActionSpec("late", str(rec), ControlType.ADVANCED, args=("late",),
                   timing=Timing.parse("after")),
        ActionSpec("default", str(rec), ControlType.ADVANCED,
                   args=("default", "%ACTIVE_UPGRADE_REQUEST%-%ACTIVE_UPGRADE_SIDE%",
                         "a b;$(x)", "%UNKNOWN%")),
        ActionSpec("early", str(rec), ControlType.ADVANCED, args=("early",),
                   timing=Timing.parse("before")),
    )
    engine, _ = make_engine(tmp_path / "home", cfg_with(tmp_path, *acts), ("actions.",))
    st = act(engine, OperatorAction.CHECK)
    assert st.operational_state is OperationalState.READY, st.reason
    got = records(log)
    assert [r["name"] for r in got] == ["early", "default", "late"]
    assert got[1]["args"] == ["CheckReadiness-Production", "a b;$(x)", "%UNKNOWN%"]
    assert got[1]["env"] == {
        "ACTIVE_UPGRADE_SIDE": "Production", "ACTIVE_UPGRADE_STATE": "Idle",
        "ACTIVE_UPGRADE_REQUEST": "CheckReadiness", "ACTIVE_UPGRADE_HW_SPLIT": "No",
        "ACTIVE_UPGRADE_SESSION": "", "ACTIVE_UPGRADE_ATTEMPT": "1",
        "ACTIVE_UPGRADE_CONFIG": "/etc/activeupgrade/configs/test.toml",
        "ACTIVE_UPGRADE_DRY_RUN": "0",
    }
    # One at a time: each started after the previous one ended.
    assert got[0]["at"] < got[1]["at"] < got[2]["at"]


def test_output_captured_with_exit_and_progress(tmp_path: Path) -> None:
    script = write_script(tmp_path / "opt" / "talk",
                          "import sys\nprint('hello', flush=True)\n"
                          "print('PROGRESS 40 copying', flush=True)\n"
                          "print('careful', file=sys.stderr)\n")
    engine, _ = make_engine(tmp_path / "home", cfg_with(
        tmp_path, ActionSpec("talk", str(script), ControlType.ADVANCED)), ("actions.",))
    seen: list[dict[str, object]] = []
    engine.bus.subscribe(lambda ev: seen.append(ev.data) if ev.kind == "progress" else None)
    assert act(engine, OperatorAction.CHECK).operational_state is OperationalState.READY
    start = next(e for e in engine.log.entries() if e.event == "action.start")
    assert start.details["exit"] == 0 and start.details["duration"] >= 0
    lines = [(e.details["stream"], e.message) for e in engine.log.children(start.id)
             if e.event == "action.output"]
    # Order within each stream is kept (the two pipes are read as data arrives).
    assert [m for s, m in lines if s == "stdout"] == ["hello", "PROGRESS 40 copying"]
    assert [m for s, m in lines if s == "stderr"] == ["careful"]
    assert any(d.get("percent") == 40.0 and d.get("text") == "copying" for d in seen)


PRODUCTION_ONLY = ("actions.advanced:gate@Production", "actions.advanced:hang@Production",
                   "actions.advanced:never@Production", "actions.advanced:w@Production")
"""Split runs only the Production side's advanced action (no Upgrade Side is built)."""


def test_failure_breaks_then_retry_after_fix(tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    script = write_script(tmp_path / "opt" / "gate", (
        "import os, sys\n"
        f"if not os.path.exists({str(flag)!r}):\n"
        "    print('some detail', file=sys.stderr)\n"
        "    print('database not reachable', file=sys.stderr)\n"
        "    sys.exit(3)\n"))
    engine, _ = make_engine(tmp_path / "home", cfg_with(
        tmp_path, ActionSpec("gate", str(script), ControlType.ADVANCED)), PRODUCTION_ONLY)
    st = act(engine, OperatorAction.SPLIT)
    assert st.operational_state is OperationalState.BROKEN
    assert "exit 3" in st.reason and st.reason.endswith("database not reachable")
    flag.touch()
    st = act(engine, OperatorAction.RETRY)
    assert st.operational_state is OperationalState.READY, st.reason
    assert st.attempt == 0


def test_hanging_action_killed_at_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = write_script(tmp_path / "opt" / "hang", (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"))
    engine, _ = make_engine(tmp_path / "home", cfg_with(
        tmp_path, ActionSpec("hang", str(script), ControlType.ADVANCED, timeout=1.5)),
        PRODUCTION_ONLY)
    began = time.time()
    st = act(engine, OperatorAction.SPLIT)
    assert st.operational_state is OperationalState.BROKEN
    assert "timed out" in st.reason and time.time() - began < 20
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not alive(child)  # the whole process group was killed, the child too


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_exit_75_retried_with_backoff(tmp_path: Path) -> None:
    count = tmp_path / "count"
    script = write_script(tmp_path / "opt" / "later", (
        "import sys, time\n"
        f"p = {str(count)!r}\n"
        "n = int(open(p).read()) if __import__('os').path.exists(p) else 0\n"
        "open(p, 'w').write(str(n + 1))\n"
        "with open(p + '.times', 'a') as fh: fh.write(f'{time.time()}\\n')\n"
        "sys.exit(75 if n < 2 else 0)\n"))
    engine, _ = make_engine(tmp_path / "home", cfg_with(
        tmp_path, ActionSpec("later", str(script), ControlType.ADVANCED, timeout=30)),
        ("actions.",))
    assert act(engine, OperatorAction.CHECK).operational_state is OperationalState.READY
    times = [float(x) for x in Path(str(count) + ".times").read_text().split()]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.45 and times[2] - times[1] >= 0.95  # doubling back-off
    start = next(e for e in engine.log.entries() if e.event == "action.start")
    assert start.details["attempts"] == 3


def test_exit_75_forever_fails_within_timeout(tmp_path: Path) -> None:
    script = write_script(tmp_path / "opt" / "never", "raise SystemExit(75)\n")
    engine, _ = make_engine(tmp_path / "home", cfg_with(
        tmp_path, ActionSpec("never", str(script), ControlType.ADVANCED, timeout=2)),
        PRODUCTION_ONLY)
    st = act(engine, OperatorAction.SPLIT)
    assert st.operational_state is OperationalState.BROKEN
    assert "within its timeout" in st.reason


def test_files_refused(tmp_path: Path) -> None:
    ok = write_script(tmp_path / "opt" / "ok", "pass\n")
    cfg = cfg_with(tmp_path)
    assert security.vet(ActionSpec("ok", str(ok), ControlType.ADVANCED), cfg) == ok
    writable = write_script(tmp_path / "opt" / "w", "pass\n")
    os.chmod(writable, 0o777)
    with pytest.raises(SecurityError, match="writable by group or others"):
        security.vet(ActionSpec("w", str(writable), ControlType.ADVANCED), cfg)
    noexec = write_script(tmp_path / "opt" / "n", "pass\n")
    os.chmod(noexec, 0o644)
    with pytest.raises(ActionError, match="not executable"):
        security.vet(ActionSpec("n", str(noexec), ControlType.ADVANCED), cfg)
    with pytest.raises(ActionError, match="missing"):
        security.vet(ActionSpec("m", str(tmp_path / "opt" / "gone"), ControlType.ADVANCED), cfg)
    outside = write_script(tmp_path / "elsewhere" / "x", "pass\n")
    with pytest.raises(ActionError, match="not on a system volume"):
        security.vet(ActionSpec("x", str(outside), ControlType.ADVANCED), cfg)
    data_cfg = Config(volumes=(VolumeSpec(str(tmp_path / "opt"), role=VolumeSpec(
        "/").role.__class__("data")),))
    with pytest.raises(ActionError, match="not on a system volume"):
        security.vet(ActionSpec("ok", str(ok), ControlType.ADVANCED), data_cfg)
    if os.geteuid() == 0:
        os.chown(ok, 65534, 65534)
        with pytest.raises(SecurityError, match="not root"):
            security.vet(ActionSpec("ok", str(ok), ControlType.ADVANCED), cfg)


def test_refused_file_breaks_the_request(tmp_path: Path) -> None:
    script = write_script(tmp_path / "opt" / "w", "pass\n")
    os.chmod(script, 0o757)
    engine, _ = make_engine(tmp_path / "home", cfg_with(
        tmp_path, ActionSpec("w", str(script), ControlType.ADVANCED)), PRODUCTION_ONLY)
    st = act(engine, OperatorAction.SPLIT)
    assert st.operational_state is OperationalState.BROKEN and "refused" in st.reason
    assert st.error is not None and st.error["error"] == "SecurityError"


def test_a_failing_action_never_breaks_a_check(tmp_path: Path) -> None:
    """`au check` reports a refused (chmod 777) or failing action; the instance stays
    Idle/Ready, so the next check, split or configuration load is allowed."""
    script = write_script(tmp_path / "opt" / "w", "pass\n")
    os.chmod(script, 0o777)
    engine, _ = make_engine(tmp_path / "home", cfg_with(
        tmp_path, ActionSpec("w", str(script), ControlType.ADVANCED)), ("actions.",))
    st = act(engine, OperatorAction.CHECK)
    assert (st.upgrade_state.value, st.operational_state) == ("Idle", OperationalState.READY)
    assert st.error is not None and st.error["error"] == "SecurityError"
    assert st.error["exit_code"] == 80 and "writable by group or others" in st.error["message"]
    assert OperatorAction.CHECK in engine.allowed() and OperatorAction.SPLIT in engine.allowed()
    os.chmod(script, 0o755)
    st = act(engine, OperatorAction.CHECK)
    assert st.operational_state is OperationalState.READY and st.error is None


def test_run_as_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        cannot_run("switching user needs root")
    # Every folder up to the file must be reachable by that user.
    for p in (tmp_path, *tmp_path.parents):
        if p != Path("/"):
            p.chmod(p.stat().st_mode | 0o055)
    (tmp_path / "opt").mkdir(mode=0o755)
    script = tmp_path / "opt" / "who"
    script.write_text("#!/bin/sh\nid -u\n")  # the interpreter of the venv may be private
    script.chmod(0o755)
    engine, _ = make_engine(tmp_path / "home", cfg_with(
        tmp_path, ActionSpec("who", str(script), ControlType.ADVANCED, user="nobody")),
        ("actions.",))
    assert act(engine, OperatorAction.CHECK).operational_state is OperationalState.READY
    lines = [e.message for e in engine.log.entries() if e.event == "action.output"]
    assert lines == [str(pwd.getpwnam("nobody").pw_uid)]


def test_helpers() -> None:
    assert parse_progress("PROGRESS 55.5 half way there") == (55.5, "half way there")
    assert parse_progress("PROGRESS x") is None and parse_progress("progress 5") is None
    assert substitute(["%A%%B%", "%%", "x%A%"], {"A": "1", "B": "2"}) == ["12", "%%", "x1"]
    assert Request.CHECK_READINESS and Side.UPGRADE
