"""The report of files changed on Production covers every change up to the switch (19.4).

PrepareMerge lists what Production changed on its system volumes since the split; a change
made after that (here by a late custom action of PrepareMerge, after its report ran, and
by the operator before a Retry of PrepareMerge) must still be in the report the operator
reads before the switch.
"""

from __future__ import annotations

import json
from pathlib import Path

from activeupgrade.config.model import (
    ActionSpec,
    Config,
    ControlType,
    Timing,
    VolumeRole,
    VolumeSpec,
)
from activeupgrade.model.states import OperationalState, OperatorAction, UpgradeState
from activeupgrade.platform.volumes import adoption
from activeupgrade.platform.volumes.livepath import SYMLINK
from activeupgrade.store.db import Store

from ..actions.helpers import act, make_engine, write_script


def _reports(store: Store) -> list[tuple[str, list[str]]]:
    rows = store.query("SELECT request, details FROM log "
                       "WHERE event = 'volume.production-changes' ORDER BY id")
    return [(row["request"], json.loads(row["details"])["paths"]) for row in rows]


def _setup(tmp_path: Path, hook_body: str) -> tuple[Config, Path]:
    software = tmp_path / "opt-app"
    (software / "bin").mkdir(parents=True)
    (software / "settings").write_text("1\n")
    hook = write_script(software / "bin" / "hook", hook_body.replace("SOFT", str(software)))
    cfg = Config(volumes=(VolumeSpec(str(software), VolumeRole.SYSTEM),),
                 actions=(ActionSpec("hook", str(hook), ControlType.ADVANCED,
                                     timing=Timing.LATE),),
                 source=str(tmp_path / "app.toml"))
    return cfg, software


def test_a_change_during_execute_merge_is_in_the_last_report(tmp_path: Path) -> None:
    # Production's software edits and adds files after PrepareMerge reported (a late action
    # of PrepareMerge on Production); ExecuteMerge reports again once the applications stop.
    body = """import os
if (os.environ["ACTIVE_UPGRADE_REQUEST"], os.environ["ACTIVE_UPGRADE_SIDE"]) == (
        "PrepareMerge", "Production"):
    open("SOFT/settings", "w").write("2\\n")
    open("SOFT/late-file", "w").write("late\\n")
"""
    cfg, software = _setup(tmp_path, body)
    engine, store = make_engine(tmp_path / "home", cfg,
                                ("volumes.", "side.", "services.", "actions.", "backup."))
    try:
        adoption.adopt(engine.instance, store, str(software), VolumeRole.SYSTEM, mode=SYMLINK)
        st = act(engine, OperatorAction.SPLIT)
        assert st.operational_state is OperationalState.READY, st.reason
        st = act(engine, OperatorAction.MERGE)
        assert st.operational_state is OperationalState.READY, st.reason
        reports = _reports(store)
        # PrepareMerge's report ran before its late action changed the files: it saw none.
        assert ("PrepareMerge", []) in reports
        assert reports[-1] == ("ExecuteMerge", ["late-file", "settings"])
    finally:
        store.close()


def test_a_retry_of_prepare_merge_reports_again(tmp_path: Path) -> None:
    body = """import os, sys
if os.environ["ACTIVE_UPGRADE_REQUEST"] == "PrepareMerge" and os.path.exists("SOFT.fail"):
    sys.exit(3)
"""
    cfg, software = _setup(tmp_path, body)
    flag = Path(f"{software}.fail")
    engine, store = make_engine(tmp_path / "home", cfg,
                                ("volumes.", "side.", "services.", "actions.", "backup."))
    try:
        adoption.adopt(engine.instance, store, str(software), VolumeRole.SYSTEM, mode=SYMLINK)
        st = act(engine, OperatorAction.SPLIT)
        assert st.operational_state is OperationalState.READY, st.reason
        flag.write_text("")
        st = act(engine, OperatorAction.MERGE)
        assert st.operational_state is OperationalState.BROKEN
        assert st.upgrade_state is UpgradeState.PREPARE_MERGE
        assert _reports(store) == [("PrepareMerge", [])]
        (software / "settings").write_text("changed before the retry\n")
        flag.unlink()
        st = act(engine, OperatorAction.RETRY)  # PrepareMerge again, then ExecuteMerge
        assert st.upgrade_state is UpgradeState.MERGE, st.reason
        assert _reports(store)[1:] == [("PrepareMerge", ["settings"]),
                                       ("ExecuteMerge", ["settings"])]
    finally:
        store.close()
