"""An action's whole path is checked (issue: a local user replaced the action of a 0777
folder by a link to ``/usr/bin/env`` and the tool ran it as root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from activeupgrade.config.model import ActionSpec, Config, ControlType, VolumeSpec
from activeupgrade.errors import SecurityError
from activeupgrade.model.states import OperationalState, OperatorAction
from activeupgrade.platform.actions import security
from tests.actions.helpers import act, make_engine, write_script
from tests.support import cannot_run


def _cfg(system: Path, *actions: ActionSpec) -> Config:
    return Config(volumes=(VolumeSpec(str(system)),), actions=actions,
                  source="/etc/activeupgrade/configs/test.toml")


def test_a_link_out_of_a_world_writable_folder_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        cannot_run("the attacker's link is made as another user (needs root)")
    system = tmp_path / "opt"
    hooks = system / "hooks"
    action = write_script(hooks / "hook", "pass\n")
    spec = ActionSpec("hook", str(action), ControlType.ADVANCED)
    assert security.vet(spec, _cfg(system, spec)) == action
    hooks.chmod(0o777)
    action.unlink()
    action.symlink_to("/usr/bin/env")
    os.lchown(action, 65534, 65534)
    with pytest.raises(SecurityError) as err:
        security.vet(spec, _cfg(system, spec))
    assert f"{hooks} is writable by others (mode 0777)" in err.value.message
    assert err.value.hint == f"chmod go-w {hooks}"
    # Even a link root made, in a folder nobody else can write, must stay on the volume.
    hooks.chmod(0o755)
    os.lchown(action, 0, 0)
    with pytest.raises(SecurityError, match="not on a system volume"):
        security.vet(spec, _cfg(system, spec))


def test_the_readiness_check_reports_the_folder(tmp_path: Path) -> None:
    """AU-C015 looks at the folders too, and `au check` never runs the action."""
    system = tmp_path / "opt"
    marker = tmp_path / "ran"
    action = write_script(system / "hooks" / "hook", f"open({str(marker)!r}, 'w')\n")
    (system / "hooks").chmod(0o777)
    spec = ActionSpec("hook", str(action), ControlType.ADVANCED)
    engine, _ = make_engine(tmp_path / "home", _cfg(system, spec), ("actions.",))
    st = act(engine, OperatorAction.CHECK)
    assert st.operational_state is OperationalState.READY
    assert st.error is not None and st.error["error"] == "SecurityError", st.error
    assert "writable by others" in st.error["message"]
    assert not marker.exists()
