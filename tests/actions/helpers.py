"""An in-process engine on the real HostPlatform, with a configuration built in code.

``ConfigPlatform`` is the host platform with the configuration given directly (instead of
loaded from a file) and, with ``only``, limited to the steps of some parts: the services and
actions tests exercise their own steps through the real engine without needing adopted
volumes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from activeupgrade.bus import Bus
from activeupgrade.config.model import Config
from activeupgrade.engine.engine import Engine
from activeupgrade.engine.status import Status
from activeupgrade.engine.steps import Step
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperationalState, OperatorAction, Request
from activeupgrade.session.host import HostPlatform
from activeupgrade.store.db import Store


class ConfigPlatform(HostPlatform):
    def __init__(self, instance: Instance, store: Store, cfg: Config,
                 only: tuple[str, ...] = ()) -> None:
        super().__init__(instance, store)
        self.cfg = cfg
        self.only = only

    def idle_config(self, config_path: str) -> Config:
        return self.cfg

    def session_config(self, session: str, config_path: str, *, stage: bool) -> Config:
        return self.cfg

    def steps(self, request: Request, config: Config) -> list[Step]:
        steps = super().steps(request, config)
        if self.only:
            steps = [s for s in steps if s.name.startswith(self.only)]
        return steps


def make_engine(home: Path, cfg: Config, only: tuple[str, ...] = ()) -> tuple[Engine, Store]:
    instance = Instance(home)
    instance.ensure()
    store = Store(instance.db)
    return Engine(instance, store, Bus(), ConfigPlatform(instance, store, cfg, only)), store


def act(engine: Engine, action: OperatorAction, timeout: float = 120.0) -> Status:
    engine.submit(action)
    end = time.time() + timeout
    while time.time() < end:
        st = engine.wait(0.2)
        if st.operational_state is not OperationalState.BUSY:
            return st
    raise AssertionError(f"{action} still busy after {timeout}s")


RECORDER = """#!{python}
import json, os, sys, time
rec = {{"name": sys.argv[1], "args": sys.argv[2:], "at": time.time(),
        "env": {{k: v for k, v in os.environ.items() if k.startswith("ACTIVE_UPGRADE_")}}}}
with open({log!r}, "a") as fh:
    fh.write(json.dumps(rec) + "\\n")
print(json.dumps(rec))  # an isolated Upgrade Side cannot write the host's file
"""


def write_recorder(path: Path, log: Path) -> Path:
    """An action file that appends its name, arguments and environment to ``log``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RECORDER.format(python=sys.executable, log=str(log)))
    os.chmod(path, 0o755)
    return path


def write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}")
    os.chmod(path, 0o755)
    return path


def records(log: Path, store: Store | None = None) -> list[dict[str, Any]]:
    """What the recorder actions wrote to ``log`` and, with ``store``, what they printed
    (the activity log keeps an action's output: the only trace of an action run inside an
    isolated Upgrade Side), in the order they ran."""
    found: dict[tuple[str, float], dict[str, Any]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                found[(rec["name"], rec["at"])] = rec
    if store is not None:
        for row in store.query("SELECT message FROM log WHERE event = 'action.output'"):
            if row["message"].startswith("{"):
                rec = json.loads(row["message"])
                found.setdefault((rec["name"], rec["at"]), rec)
    return sorted(found.values(), key=lambda r: float(r["at"]))
