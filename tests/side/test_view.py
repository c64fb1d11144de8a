"""The Upgrade Side's view as planned (no root needed): which mount of the host becomes what,
the entering helper's accounts and environment, and the settings of [upgrade_side]."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from activeupgrade.config.loader import load_file
from activeupgrade.config.model import Config, UpgradeSideSpec, VolumeRole, VolumeSpec
from activeupgrade.errors import ConfigError, UsageError
from activeupgrade.instance import Instance
from activeupgrade.platform.side import enter, mounts, packages, view
from activeupgrade.platform.side.layers import LayerKind
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.platform.volumes.livepath import SYMLINK
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.store.db import Store
from tests.support import cannot_run


def line(mid: int, parent: int, point: str, fstype: str, root: str = "/") -> str:
    return f"{mid} {parent} 0:{mid} {root} {point} rw,relatime - {fstype} src rw"


def test_visible_mounts_are_the_tops_of_stacks_and_nothing_they_cover() -> None:
    text = "\n".join([
        line(22, 27, "/proc", "proc"),      # listed before its parent, as the kernel may
        line(27, 1, "/", "ext4"),
        line(30, 27, "/srv", "ext4"),
        line(31, 30, "/srv/inner", "tmpfs"),  # covered when /srv is mounted over
        line(32, 30, "/srv", "xfs"),          # the over-mount
        line(33, 32, "/srv/new", "tmpfs"),
        line(34, 27, "/a\\040b", "ext4"),     # a space, escaped
    ])
    seen = [(m.point, m.fstype) for m in mounts.visible(mounts.parse(text))]
    assert ("/srv", "xfs") in seen and ("/srv/new", "tmpfs") in seen
    assert ("/srv", "ext4") not in seen and ("/srv/inner", "tmpfs") not in seen
    assert seen.index(("/", "ext4")) < seen.index(("/proc", "proc"))
    assert ("/a b", "ext4") in seen
    assert mounts.under("/a/b", "/a") and not mounts.under("/ab", "/a") and mounts.under(
        "/x", "/")


def make_instance(tmp_path: Path) -> tuple[Instance, Store, Path, Path, Path]:
    inst = Instance(tmp_path / "home")
    inst.ensure()
    store = Store(inst.db)
    software, data, tools = tmp_path / "opt-app", tmp_path / "var-app", tmp_path / "opt-tools"
    for folder in (software, data, tools):
        folder.mkdir()
    os.chmod(data, 0o750)
    adoption.adopt(inst, store, str(software), VolumeRole.SYSTEM, mode=SYMLINK)
    adoption.adopt(inst, store, str(data), VolumeRole.DATA, mode=SYMLINK)
    adoption.adopt(inst, store, str(tools), VolumeRole.SYSTEM, mode=SYMLINK)
    vol = registry.require(store, str(software))
    vol.session = {"id": "s1", "original": "a", "upgrade": "b"}
    registry.save(store, vol)
    return inst, store, software, data, tools


def test_the_plan_of_a_view(tmp_path: Path) -> None:
    inst, store, software, data, tools = make_instance(tmp_path)
    other = tmp_path / "other-home"
    other.mkdir()
    resolv = Path("/etc/hostname")  # (host paths outside /tmp: the side has its own /tmp)
    visible = mounts.parse("\n".join([
        line(27, 1, "/", "ext4"),
        line(40, 27, "/mnt", "xfs"),
        line(41, 40, "/mnt", "proc"),                   # mounted over /mnt: a proc on top
        line(47, 27, "/srv", "xfs"),
        line(42, 27, str(software), "ext4"),            # the live path: replaced
        line(43, 27, str(inst.home / "replicas"), "ext4"),  # inside the instance: never shown
        line(44, 27, "/run/netns", "nsfs"),             # under /run: the side has its own
        line(45, 27, str(resolv), "ext4"),
        line(46, 27, str(other), "ext4"),
    ]))
    cfg = Config(volumes=(VolumeSpec(str(software)), VolumeSpec(str(data), VolumeRole.DATA)),
                 upgrade_side=UpgradeSideSpec(packages=(str(resolv),)))
    if not (os.path.isdir("/mnt") and os.path.isdir("/srv") and resolv.is_file()):
        cannot_run("needs /mnt, /srv and /etc/hostname (as on any Debian host)")
    plan = view.plan(inst, store, cfg, scratch=str(tmp_path / "scratch"),
                     visible=mounts.visible(visible), others=[other])
    by = {(la.kind, la.path): la for la in plan.layers}
    assert plan.layers[0].kind is LayerKind.ROOT and plan.layers[0].writable
    assert (LayerKind.MASK, "/mnt") in by  # the top of /mnt is a proc: hidden
    assert by[(LayerKind.OUTSIDE, "/srv")].writable
    system = by[(LayerKind.SYSTEM, str(software))]
    assert system.source == registry.require(store, str(software)).replica("b")
    scratch = by[(LayerKind.DATA, str(data))]
    assert scratch.owner[2] == 0o750 and scratch.scratch.startswith("data/")
    assert (LayerKind.SYSTEM, str(tools)) not in by  # not in the session: as the host has it
    assert by[(LayerKind.FILE, str(resolv))].writable is False
    assert (LayerKind.NEEDED, str(resolv)) in by
    for hidden in (inst.home, other):
        assert (LayerKind.MASK, str(hidden)) in by
    assert not any(la.path.startswith(str(inst.home / "replicas")) for la in plan.layers)
    assert not any(la.path == "/run/netns" for la in plan.layers)
    kinds = [la.kind for la in plan.layers]
    assert kinds.index(LayerKind.FRESH) < kinds.index(LayerKind.SYSTEM) < kinds.index(
        LayerKind.MASK, kinds.index(LayerKind.SYSTEM))
    # What the init is given and the record keeps round-trips.
    assert view.View.from_list(plan.to_list()).to_list() == plan.to_list()
    read_only = view.plan(inst, store, Config(volumes=cfg.volumes, upgrade_side=UpgradeSideSpec(
        outside="read-only")), scratch="/s", visible=mounts.visible(visible), others=[])
    assert not read_only.layers[0].writable
    store.close()


def test_accounts_and_environment_of_the_entering_helper(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nadm:x:4:www-data,syslog\nwww-data:x:33:\n")
    www = enter.account("www-data", str(etc))
    assert (www.uid, www.gid, www.groups, www.home) == (33, 33, [4, 33], "/var/www")
    assert enter.account("1234", str(etc)).uid == 1234
    with pytest.raises(enter.EnterError, match="no user"):
        enter.account("nobody-here", str(etc))
    env = enter.environment({"AU_HOME": "/x", "LC_ALL": "C", "ACTIVE_UPGRADE_STATE": "Split",
                             "PYTHONPATH": "/p", "TERM": "xterm", "SSL_CERT_FILE": "/c"},
                            {"PS1": "> "}, www)
    assert env == {"LC_ALL": "C", "ACTIVE_UPGRADE_STATE": "Split", "TERM": "xterm",
                   "LANG": "C.UTF-8", "PATH": enter.SAFE_PATH, "HOME": "/var/www",
                   "USER": "www-data", "LOGNAME": "www-data", "SHELL": "/usr/sbin/nologin",
                   "ACTIVE_UPGRADE_SIDE": "Upgrade", "PS1": "> "}
    assert enter.parse(["12", "--user", "www-data", "--env", "A=b=c", "--userns", "99",
                        "--", "id"]) == enter.Request(12, ["id"], "www-data", "/",
                                                      {"A": "b=c"}, 99)
    with pytest.raises(enter.EnterError):
        enter.parse(["12", "id"])


def test_package_names_are_checked() -> None:
    assert packages.check_names(["nginx", "nginx=1.22.1-9+deb12u11", "libc6:amd64"])
    for bad in ("-o", "a;b", "", "a b"):
        with pytest.raises(UsageError):
            packages.check_names([bad])


@pytest.mark.parametrize(("side", "field"), [
    ('scratch_size = "lots"', "scratch_size"),
    ('host_address = "169.254.9.1/30"', "side_address"),
    ('outside = "sometimes"', "outside"),
])
def test_upgrade_side_settings_are_checked(tmp_path: Path, side: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[upgrade_side]\n{side}\n")
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert field in info.value.message and "bad.toml" in info.value.message


def test_upgrade_side_defaults_choose_the_link_and_copy_on_write(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[upgrade_side]\nscratch_size = "4G"\n')
    side = load_file(path).upgrade_side
    assert (side.host_address, side.side_address, side.outside, side.scratch_size) == (
        "", "", "copy-on-write", "4G")


def test_the_data_volumes_of_another_instance_are_read_again_only_when_its_state_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = Instance(tmp_path / "other-home")
    other.ensure()
    store = Store(other.db)
    first, second = tmp_path / "var-one", tmp_path / "var-two"
    for folder in (first, second):
        folder.mkdir()
    adoption.adopt(other, store, str(first), VolumeRole.DATA, mode=SYMLINK)
    opened: list[str] = []
    memo = SyncState.once().others  # (the daemon's: kept from one start of the side to the next)
    connect = sqlite3.connect

    def counting(target: str, **kwargs: Any) -> sqlite3.Connection:
        opened.append(target)
        con: sqlite3.Connection = connect(target, **kwargs)
        return con

    monkeypatch.setattr(sqlite3, "connect", counting)
    paths = {p for _, p in view.other_data_paths(other.home, memo)}
    assert paths == {str(first)} and len(opened) == 1
    view.other_data_paths(other.home, memo)  # the first look made the log: it is read once more
    settled = len(opened)
    assert {p for _, p in view.other_data_paths(other.home, memo)} == {str(first)}
    assert len(opened) == settled  # nothing changed: the database is not opened
    adoption.adopt(other, store, str(second), VolumeRole.DATA, mode=SYMLINK)
    assert {p for _, p in view.other_data_paths(other.home, memo)} == {str(first), str(second)}
    # a checkpoint that empties the log, then a change written into it from its start
    aside = connect(str(other.db))
    aside.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    aside.close()
    adoption.release(store, registry.require(store, str(first)))
    assert {p for _, p in view.other_data_paths(other.home, memo)} == {str(second)}
    assert len(opened) > settled + 1
    store.close()
