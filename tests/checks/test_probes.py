"""Readiness checks on real folders, files and host facts."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from activeupgrade.checks import catalogue
from activeupgrade.checks.probes import PROBES
from activeupgrade.checks.probes import volumes as volume_probes
from activeupgrade.checks.runner import CheckEnv, Verdict, run_checks, run_one
from activeupgrade.config.model import (
    ActionSpec,
    BackupSpec,
    Config,
    ControlType,
    HealthKind,
    HealthSpec,
    ServiceBackend,
    ServiceSpec,
    UpgradeSideSpec,
    VolumeRole,
    VolumeSpec,
)
from activeupgrade.instance import Instance
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.platform.volumes.livepath import SYMLINK
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.store.db import Store

EnvFor = Callable[[Config], CheckEnv]


@pytest.fixture
def env_for(tmp_path: Path) -> Iterator[EnvFor]:
    instance = Instance(tmp_path / "home")
    instance.ensure()
    store = Store(instance.db)

    def make(cfg: Config) -> CheckEnv:
        return CheckEnv(instance=instance, store=store, config=cfg)

    yield make
    store.close()


def executable(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(0)\n")
    path.chmod(mode)
    return path


def test_catalogue_ids_are_stable_unique_and_all_have_probes() -> None:
    ids = [c.id for c in catalogue.CHECKS]
    assert len(ids) == len(set(ids)) and len({c.name for c in catalogue.CHECKS}) == len(ids)
    assert all(re.fullmatch(r"AU-C\d{3}", i) for i in ids)
    assert set(PROBES) == set(ids)
    for c in catalogue.CHECKS:
        assert c.title and c.cause and c.fix
    assert set(catalogue.UPGRADE_SIDE) <= set(ids) and set(catalogue.FINAL) <= set(ids)


def test_volumes_missing_overlapping_and_not_adopted(env_for: EnvFor, tmp_path: Path) -> None:
    a = tmp_path / "opt" / "a"
    a.mkdir(parents=True)
    cfg = Config(volumes=(VolumeSpec(str(a)), VolumeSpec(str(a / "sub")),
                          VolumeSpec(str(tmp_path / "gone"), VolumeRole.DATA)))
    env = env_for(cfg)
    exist = run_one("AU-C002", env)
    assert not exist.ok and str(tmp_path / "gone") in exist.message and exist.action
    overlap = run_one("AU-C004", env)
    assert not overlap.ok and "overlapping" in overlap.message
    managed = run_one("AU-C003", env)
    assert not managed.ok and "not adopted" in managed.message
    assert run_one("AU-C005", env).ok  # tmp folders and AU_HOME share a filesystem
    free = run_one("AU-C006", env)
    assert free.ok and free.details["free_bytes"] > 0


def test_no_volume_selected_is_one_warning(env_for: EnvFor) -> None:
    report = run_checks(env_for(Config(upgrade_side=UpgradeSideSpec(isolation="directory"))),
                        catalogue.ON_DEMAND)
    assert report.ready
    warned = [c for c in report.checks if not c.ok]
    assert [(c.id, c.severity.value) for c in warned] == [("AU-C002", "warning")]
    assert "would upgrade nothing" in warned[0].message


def test_action_files(env_for: EnvFor, tmp_path: Path) -> None:
    system = tmp_path / "opt"
    ok = executable(system / "ok")
    loose = executable(system / "loose", 0o775)
    plain = executable(system / "plain", 0o644)
    outside = executable(tmp_path / "elsewhere" / "x")
    actions = tuple(ActionSpec(p.name, str(p), ControlType.ADVANCED)
                    for p in (ok, loose, plain, outside))
    cfg = Config(volumes=(VolumeSpec(str(system)),),
                 actions=(*actions, ActionSpec("gone", str(system / "gone"),
                                               ControlType.ADVANCED)))
    env = env_for(cfg)
    files = run_one("AU-C013", env)
    assert not files.ok and "plain" in files.message and "gone" in files.message
    assert "ok:" not in files.message
    place = run_one("AU-C014", env)
    assert not place.ok and "x (" in place.message and "ok (" not in place.message
    perms = run_one("AU-C015", env)
    assert not perms.ok and "loose" in perms.message and "0775" in perms.message
    good = env_for(Config(volumes=cfg.volumes, actions=actions[:1]))
    assert all(run_one(i, good).ok for i in ("AU-C013", "AU-C014", "AU-C015"))


def test_packages_and_backup_paths(env_for: EnvFor, tmp_path: Path) -> None:
    (tmp_path / "pkgs").mkdir()
    (tmp_path / "pkgs" / "app-2.0.tar.gz").write_text("x")
    cfg = Config(
        volumes=(VolumeSpec(str(tmp_path / "opt")),),
        backup=BackupSpec((str(tmp_path / "opt" / "log" / "*.log"), "/var/log/elsewhere")),
        upgrade_side=UpgradeSideSpec(packages=(str(tmp_path / "pkgs" / "app-*.tar.gz"),
                                               str(tmp_path / "pkgs" / "missing.deb"))),
    )
    env = env_for(cfg)
    pkgs = run_one("AU-C017", env)
    assert not pkgs.ok and "missing.deb" in pkgs.message and "app-" not in pkgs.message
    backup = run_one("AU-C019", env)
    assert not backup.ok and backup.severity.value == "warning"
    assert "/var/log/elsewhere" in backup.message


def test_services(env_for: EnvFor, tmp_path: Path) -> None:
    app = executable(tmp_path / "bin" / "app")
    cfg = Config(services=(ServiceSpec("good", command=(str(app),)),
                           ServiceSpec("bad", command=(str(tmp_path / "bin" / "nope"),)),
                           ServiceSpec("odd", command=(str(app),), stop_signal="SIGNOPE")))
    env = env_for(cfg)
    exist = run_one("AU-C010", env)
    assert not exist.ok and "bad:" in exist.message and "good" not in exist.message
    running = run_one("AU-C011", env)
    assert not running.ok and running.severity.value == "warning"
    stop = run_one("AU-C012", env)
    assert not stop.ok and "SIGNOPE" in stop.message


def test_an_unknown_systemd_unit_is_not_stoppable(env_for: EnvFor) -> None:
    """A unit systemd cannot find (or no systemd at all) is never reported "can be
    stopped"."""
    cfg = Config(services=(ServiceSpec("web", backend=ServiceBackend.SYSTEMD,
                                       unit="no-such-unit-au-test.service"),))
    stop = run_one("AU-C012", env_for(cfg))
    assert not stop.ok, stop.message
    assert "can be stopped" not in stop.message
    assert "no-such-unit-au-test.service" in stop.message or "systemd is not running" in (
        stop.message)


def test_link_addresses_in_use_are_refused(env_for: EnvFor) -> None:
    clash = Config(upgrade_side=UpgradeSideSpec("127.0.0.1/30", "127.0.0.2/30",
                                                isolation="namespaces"))
    result = run_one("AU-C009", env_for(clash))
    assert not result.ok and "127.0.0.1 is already used" in result.message
    # Not the default addresses: a leftover link of another instance may hold those.
    free = Config(upgrade_side=UpgradeSideSpec("169.254.213.1/30", "169.254.213.2/30",
                                               isolation="namespaces"))
    assert run_one("AU-C009", env_for(free)).ok
    unused = Config(upgrade_side=UpgradeSideSpec("127.0.0.1/30", "127.0.0.2/30",
                                                 isolation="directory"))
    assert run_one("AU-C009", env_for(unused)).ok


def test_privileges_soften_to_a_warning_without_namespaces(env_for: EnvFor) -> None:
    result = run_one("AU-C007", env_for(Config(upgrade_side=UpgradeSideSpec(
        isolation="directory"))))
    if os.geteuid() == 0:
        assert result.ok
    else:
        assert not result.ok and result.severity.value == "warning"


def test_another_session_on_record(env_for: EnvFor) -> None:
    env = env_for(Config())
    assert run_one("AU-C018", env).ok
    with env.store.transaction() as db:
        db.execute("INSERT INTO sessions (id, started, config) VALUES ('s-old', 1, '')")
    result = run_one("AU-C018", env)
    assert not result.ok and "s-old" in result.message
    env.session = "s-old"
    assert run_one("AU-C018", env).ok


def test_readiness_actions_are_listed_not_run_when_read_only(
    env_for: EnvFor, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    act = tmp_path / "opt" / "ready"
    act.parent.mkdir(parents=True)
    act.write_text(f"#!{sys.executable}\nopen({str(marker)!r}, 'w').close()\n")
    act.chmod(0o755)
    cfg = Config(volumes=(VolumeSpec(str(tmp_path / "opt")),),
                 actions=(ActionSpec("ready", str(act), ControlType.READINESS_CHECK),))
    env = env_for(cfg)
    env.run_actions = False
    result = run_one("AU-C016", env)
    assert result.ok and result.details["skipped"] and not marker.exists()
    assert result.to_dict()["verdict"] == "pass"


def test_a_probe_bug_fails_its_check_only(env_for: EnvFor, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(env: CheckEnv) -> Verdict:
        raise RuntimeError("boom")

    monkeypatch.setitem(PROBES, "AU-C004", broken)
    report = run_checks(env_for(Config()), ("AU-C004", "AU-C007"))
    assert not report.checks[0].ok and "boom" in report.checks[0].message
    assert len(report.checks) == 2


LINK_PROBE = """
import json, sys
from pathlib import Path
from activeupgrade import proc
from activeupgrade.checks.runner import CheckEnv, run_one
from activeupgrade.config.model import Config, UpgradeSideSpec
from activeupgrade.instance import Instance
from activeupgrade.store.db import Store
instance = Instance(Path(sys.argv[1]))
instance.ensure()
env = CheckEnv(instance=instance, store=Store(instance.db),
               config=Config(upgrade_side=UpgradeSideSpec(
                   "169.254.77.1/30", "169.254.77.2/30", isolation="namespaces")))
out = {}
for name in ("au0123abh", "eth9"):
    proc.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name[:-1] + "p"])
    proc.run(["ip", "addr", "add", "169.254.77.1/30", "dev", name])
    r = run_one("AU-C009", env)
    out[name] = [r.ok, r.severity.value, r.message]
print(json.dumps(out))
"""


def test_link_address_of_another_instance_warns_a_foreign_one_blocks(
    needs_root: None, tmp_path: Path
) -> None:
    # In a network namespace of its own: the host's interfaces are never touched.
    import json
    import subprocess

    done = subprocess.run(["unshare", "--net", sys.executable, "-c", LINK_PROBE,
                           str(tmp_path / "home")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["au0123abh"][:2] == [False, "warning"]
    assert "another Active Upgrade instance" in out["au0123abh"][2]
    assert out["eth9"][:2] == [False, "error"]
    assert "169.254.77.1 is already used on eth9" in out["eth9"][2]


def test_a_service_program_anyone_could_replace_fails_the_services_check(
        env_for: EnvFor, tmp_path: Path) -> None:
    """The program a service runs as root is a trusted path like an action's file: a
    folder on its path writable by others fails AU-C010, naming that folder."""
    shared = tmp_path / "shared"
    app = executable(shared / "app")
    shared.chmod(0o777)
    named = executable(tmp_path / "bin" / "named-app")
    cfg = Config(services=(
        ServiceSpec("open", command=(str(app),)),
        ServiceSpec("by-name", command=("named-app",),
                    env=(("PATH", f"{tmp_path / 'nothing'}:{named.parent}"),)),
    ))
    exist = run_one("AU-C010", env_for(cfg))
    assert not exist.ok
    assert f"open: {app}: refused: {shared} is writable by others" in exist.message
    assert "by-name" not in exist.message  # found on its own PATH, trusted
    shared.chmod(0o755)
    assert run_one("AU-C010", env_for(cfg)).ok


def test_a_health_command_anyone_could_replace_fails_the_services_check(
        env_for: EnvFor, tmp_path: Path) -> None:
    app = executable(tmp_path / "bin" / "app")
    shared = tmp_path / "shared"
    probe = executable(shared / "probe")
    shared.chmod(0o777)
    cfg = Config(services=(ServiceSpec(
        "web", command=(str(app),), health=HealthSpec(HealthKind.COMMAND, argv=(str(probe),))),))
    exist = run_one("AU-C010", env_for(cfg))
    assert not exist.ok
    assert f"web: health check: {probe}: refused: {shared} is writable" in exist.message


def test_free_space_of_a_tracked_volume_needs_no_walk(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With the daemon's sync state, an adopted volume's size comes from its change
    tracking: the tree is not walked again, and a change since is counted."""
    instance = Instance(tmp_path / "home")
    instance.ensure()
    store = Store(instance.db)
    state = SyncState()
    app = tmp_path / "opt" / "app"
    (app / "lib").mkdir(parents=True)
    (app / "lib" / "one").write_bytes(b"x" * 100_000)
    (app / "two").write_bytes(b"y" * 50_000)
    try:
        adoption.adopt(instance, store, str(app), VolumeRole.SYSTEM, mode=SYMLINK, state=state)
        if not state.tracked(registry.by_path(store, str(app)).folder):  # type: ignore[union-attr]
            pytest.fail("the test filesystem's timestamps are coarse: no change tracking")
        (app / "three").write_bytes(b"z" * 30_000)

        def walked(root: str) -> int:
            raise AssertionError(f"{root} walked")

        monkeypatch.setattr(volume_probes, "tree_size", walked)
        env = CheckEnv(instance=instance, store=store, config=Config(
            volumes=(VolumeSpec(str(app)),)), sync=state)
        free = run_one("AU-C006", env)
        assert free.ok and free.details["needed_bytes"] == int(
            180_000 * volume_probes.MARGIN), free.details
    finally:
        state.close()
        store.close()
