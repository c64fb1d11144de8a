"""The systemd backend against a stand-in ``systemctl`` (systemd is not PID 1 here; the
same backend against a real systemd: ``test_systemd_host.py``).

The stand-in is placed first on PATH (the OS edge). Like the real one it keeps the
startup type in the unit-file folder, which lives on a system volume (as
``/etc/systemd/system`` does), and the running state in a runtime folder; it records every
call with the mount namespace it ran in. So the test can see that the Upgrade Side's
startup type is changed inside the Upgrade Side (its replica) and Production's never.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from activeupgrade.config.model import (
    Config,
    ServiceBackend,
    ServiceSpec,
    UpgradeSideSpec,
    VolumeRole,
    VolumeSpec,
)
from activeupgrade.model.states import OperationalState, OperatorAction, Side
from activeupgrade.platform.services import systemd
from activeupgrade.platform.services.backend import backend_kind
from activeupgrade.platform.services.backends import backend_for
from activeupgrade.platform.services.systemd import Systemd
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.platform.volumes.livepath import SYMLINK
from tests.actions.helpers import act, make_engine
from tests.support import cannot_run

from .helpers import open_instance

STANDIN = """#!{python}
import json, os, sys
units, run, log = {units!r}, {run!r}, {log!r}
cmd, unit = sys.argv[1], sys.argv[2]
with open(log, "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "mnt": os.readlink("/proc/self/ns/mnt")}})
             + "\\n")
active = os.path.join(run, unit + ".active")
enabled = os.path.join(units, unit + ".enabled")
def read(p, default):
    return open(p).read().strip() if os.path.exists(p) else default
if cmd == "is-active":
    state = read(active, "inactive"); print(state); sys.exit(0 if state == "active" else 3)
if cmd in ("start", "stop"):
    open(active, "w").write("active" if cmd == "start" else "inactive"); sys.exit(0)
if cmd == "is-enabled":
    state = read(enabled, "disabled"); print(state); sys.exit(0 if state == "enabled" else 1)
if cmd in ("enable", "disable"):
    open(enabled, "w").write(cmd + "d"); sys.exit(0)
print("unknown command " + cmd, file=sys.stderr); sys.exit(1)
"""


class Standin:
    def __init__(self, tmp: Path, units: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = tmp / "bin"
        self.run = tmp / "runtime"
        self.log = tmp / "systemctl.jsonl"
        for d in (self.bin, self.run, units):
            d.mkdir(parents=True, exist_ok=True)
        script = self.bin / "systemctl"
        script.write_text(STANDIN.format(python=sys.executable, units=str(units),
                                         run=str(self.run), log=str(self.log)))
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{self.bin}:{os.environ['PATH']}")

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(x) for x in self.log.read_text().splitlines()]

    def verbs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls() if c["argv"][0] not in ("is-active", "show")]


def test_backend_selection() -> None:
    unit = ServiceSpec(name="db", unit="db.service")
    assert not Path("/run/systemd/system").is_dir()  # systemd is not PID 1 on this host
    assert backend_kind(unit) is ServiceBackend.SUPERVISOR
    forced = ServiceSpec(name="db", unit="db.service", backend=ServiceBackend.SYSTEMD)
    assert backend_kind(forced) is ServiceBackend.SYSTEMD


def test_start_stop_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Standin(tmp_path, tmp_path / "units", monkeypatch)
    inst, store = open_instance(tmp_path / "home")
    spec = ServiceSpec(name="db", unit="db.service", backend=ServiceBackend.SYSTEMD)
    backend = backend_for(spec, inst, store)
    assert isinstance(backend, Systemd)
    assert not backend.status(spec).running
    assert not backend.start(spec).already
    assert backend.status(spec).running
    assert backend.start(spec).already  # idempotent
    assert not backend.stop(spec).already
    assert backend.stop(spec).already
    assert fake.verbs() == [["is-enabled", "db.service"], ["start", "db.service"],
                            ["is-enabled", "db.service"], ["stop", "db.service"]]
    with pytest.raises(Exception, match="never changed"):
        backend.set_enabled(spec, Side.PRODUCTION, False)


@pytest.mark.parametrize(("isolation", "units_on_volume"), [
    ("directory", True), ("namespaces", True), ("namespaces", False)])
def test_startup_type_through_a_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str, units_on_volume: bool,
) -> None:
    if isolation == "namespaces" and os.geteuid() != 0:
        cannot_run("an isolated Upgrade Side needs root")
    etc = tmp_path / "etc-app"
    units = etc / "systemd"
    fake = Standin(tmp_path, units, monkeypatch)
    # The stand-in keeps its enablement where systemd keeps /etc/systemd/system's links;
    # when that folder is on no volume, the Upgrade Side sees Production's.
    monkeypatch.setattr(systemd, "UNIT_FOLDER",
                        str(units) if units_on_volume else str(tmp_path / "elsewhere"))
    (units / "db.service.enabled").write_text("enabled")
    spec = ServiceSpec(name="db", unit="db.service", backend=ServiceBackend.SYSTEMD)
    # The stand-in lies under /tmp, which the Upgrade Side has of its own: listed as a
    # program the upgrade needs, it is shown there (read-only).
    cfg = Config(volumes=(VolumeSpec(str(etc), VolumeRole.SYSTEM),), services=(spec,),
                 upgrade_side=UpgradeSideSpec(isolation=isolation, packages=(str(fake.bin),)))
    engine, store = make_engine(tmp_path / "home", cfg, ("volumes.", "side.", "services."))
    adoption.adopt(engine.instance, store, str(etc), VolumeRole.SYSTEM, mode=SYMLINK)
    Systemd(engine.instance, store).start(spec)

    st = act(engine, OperatorAction.SPLIT)
    assert st.operational_state is OperationalState.READY, st.reason
    vol = registry.by_path(store, str(etc))
    assert vol is not None
    upgrade_units = Path(vol.replica(vol.session["upgrade"])) / "systemd"
    # Production's startup type is untouched; the Upgrade Side's is disabled.
    assert (units / "db.service.enabled").read_text() == "enabled"
    host_ns = os.readlink("/proc/self/ns/mnt")
    if isolation == "namespaces" and units_on_volume:
        # Run inside the Upgrade Side: on its replica, and not on Production (its record of
        # the call went to the side's own /tmp).
        assert not [c for c in fake.calls() if c["argv"][0] == "disable"]
        assert all(c["mnt"] == host_ns for c in fake.calls())
        assert (upgrade_units / "db.service.enabled").read_text() == "disabled"
    else:
        # Not isolated, or the unit folder is Production's: `systemctl disable` would
        # change Production's; it is recorded instead.
        assert not [c for c in fake.calls() if c["argv"][0] == "disable"]
        assert store.get_doc("startup", "Upgrade:db") == {"enabled": False}

    st = act(engine, OperatorAction.MERGE)
    assert st.operational_state is OperationalState.READY, st.reason
    verbs = [c["argv"][0] for c in fake.calls() if c["argv"][0] != "show"]
    # Stopped, then started on the upgraded units (the startup type is restored after).
    assert "stop" in verbs and "start" in verbs[verbs.index("stop"):]
    # After the switch the upgraded unit files are live and enabled again.
    assert (units / "db.service.enabled").read_text() == "enabled"
    assert Systemd(engine.instance, store).status(spec).running
