"""In-process helpers of the services tests: the test service's spec, an instance.

(The CLI-level helpers shared with other areas, ``HTTPAPP`` and ``free_port`` among them,
are in ``tests/support.py``.)"""

from __future__ import annotations

import sys
from pathlib import Path

from activeupgrade.config.model import HealthKind, HealthSpec, ServiceSpec, SocketSpec
from activeupgrade.instance import Instance
from activeupgrade.store.db import Store
from tests.support import HTTPAPP, free_port

__all__ = ["HTTPAPP", "app_spec", "free_port", "open_instance"]


def app_spec(name: str, port: int, *, version: str = "v1", start_delay: float = 0.0,
             record: str = "", extra: tuple[str, ...] = (), grace: float = 5.0) -> ServiceSpec:
    argv = [sys.executable, str(HTTPAPP), "--version", version,
            "--start-delay", str(start_delay)]
    if record:
        argv += ["--record", record]
    return ServiceSpec(
        name=name,
        command=(*argv, *extra),
        sockets=(SocketSpec("http", f"127.0.0.1:{port}", backlog=4096),),
        health=HealthSpec(HealthKind.HTTP, f"http://127.0.0.1:{port}/", timeout=2.0,
                          interval=0.02),
        stop_grace=grace,
        start_timeout=20.0,
    )


def open_instance(home: Path) -> tuple[Instance, Store]:
    inst = Instance(home)
    inst.ensure()
    return inst, Store(inst.db)
