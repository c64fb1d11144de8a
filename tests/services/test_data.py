"""Debian's Redis and PostgreSQL through the keeper's proxy: merge and abort from merge
under a write load, 0 refused connections, 0 acknowledged writes lost.

Both bind their own port, so they cannot take a held socket: the keeper holds the public
address and relays each connection to the daemon's private upstream (``handover =
"proxy"``). While a daemon stops and starts, new connections wait in the keeper; before
the stop signal the keeper lets the relayed connections finish. Redis uses the late-stop
switchover (it serves through the volume switch, then stops right before the new one
starts), PostgreSQL the default stop-start. PostgreSQL stops with
SIGINT (its fast shutdown: in-flight transactions are rolled back, the committed ones
are on disk), Redis with SIGTERM (appendonly, fsync at every write). A real managed system
volume is switched at merge and back at abort, so the daemons really restart each time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from activeupgrade.config.model import (
    Config,
    Handover,
    HealthKind,
    HealthSpec,
    ServiceSpec,
    SocketSpec,
    Switchover,
    VolumeRole,
    VolumeSpec,
)
from activeupgrade.engine.engine import Engine
from activeupgrade.model.states import OperationalState, OperatorAction
from activeupgrade.platform.services.supervisor import Supervisor
from activeupgrade.platform.volumes import adoption
from activeupgrade.platform.volumes.livepath import SYMLINK
from tests.actions.helpers import act, make_engine

from .helpers import free_port
from .writes import Writes, pg_login, pg_query, stored

ONLY = ("volumes.", "services.")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def redis_spec(data: Path, port: int, upstream: int) -> ServiceSpec:
    """The worked Redis configuration of docs/services-and-actions.md, in code."""
    return ServiceSpec(
        name="cache",
        command=(shutil.which("redis-server") or "/usr/bin/redis-server", "--bind",
                 "127.0.0.1", "--port", str(upstream), "--dir", str(data), "--appendonly",
                 "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"),
        sockets=(SocketSpec("redis", f"127.0.0.1:{port}", upstream=f"127.0.0.1:{upstream}"),),
        handover=Handover.PROXY,
        switchover=Switchover.LATE_STOP,  # serves through the switch, then stop + start
        stop_signal="SIGTERM",
        health=HealthSpec(HealthKind.COMMAND, argv=(
            "redis-cli", "-h", "127.0.0.1", "-p", str(upstream), "-e", "ping"),
            timeout=2.0, interval=0.02),
        start_timeout=20.0,
    )


def postgres_spec(data: Path, port: int, upstream: int) -> ServiceSpec:
    """The worked PostgreSQL configuration of docs/services-and-actions.md, in code."""
    return ServiceSpec(
        name="db",
        command=(str(PG_BIN / "postgres"), "-D", str(data / "cluster"), "-p", str(upstream),
                 "-c", "listen_addresses=127.0.0.1", "-k", str(data)),
        user="postgres",
        sockets=(SocketSpec("pg", f"127.0.0.1:{port}", upstream=f"127.0.0.1:{upstream}"),),
        handover=Handover.PROXY,
        stop_signal="SIGINT",  # fast shutdown; SIGTERM (smart) waits for every session
        stop_grace=20.0,
        health=HealthSpec(HealthKind.COMMAND, argv=(
            str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(upstream)),
            timeout=2.0, interval=0.05),
        start_timeout=30.0,
    )


@dataclass
class Data:
    kind: str
    engine: Engine
    spec: ServiceSpec
    port: int
    upstream: int


def _postgres_cluster(data: Path) -> None:
    shutil.chown(data, "postgres", "postgres")
    subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D",
                    str(data / "cluster"), "--auth=trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, timeout=120)


@pytest.fixture(params=["redis", "postgres"])
def data(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Data]:
    kind = str(request.param)
    software = tmp_path / "etc-app"
    software.mkdir()
    (software / "VERSION").write_text("v1\n")
    # PostgreSQL runs as postgres: its folder must not be under root's private temp dir.
    folder = Path(tempfile.mkdtemp(prefix=f"au-{kind}-", dir="/tmp"))
    os.chmod(folder, 0o700)
    port, upstream = free_port(), free_port()
    if kind == "postgres":
        _postgres_cluster(folder)
        spec = postgres_spec(folder, port, upstream)
    else:
        spec = redis_spec(folder, port, upstream)
    cfg = Config(volumes=(VolumeSpec(str(software)),), services=(spec,))
    engine, store = make_engine(tmp_path / "home", cfg, ONLY)
    adoption.adopt(engine.instance, store, str(software), VolumeRole.SYSTEM, mode=SYMLINK)
    sup = Supervisor(engine.instance, store)
    sup.start(spec)
    if kind == "postgres":
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            pg_login(s)
            pg_query(s, "CREATE TABLE writes (n bigint PRIMARY KEY)")
    yield Data(kind, engine, spec, port, upstream)
    sup.shutdown(spec)
    shutil.rmtree(folder, ignore_errors=True)


def run_action(d: Data, action: OperatorAction) -> None:
    st = act(d.engine, action)
    assert st.operational_state is OperationalState.READY, st.reason


def starts(d: Data) -> int:
    st = Supervisor(d.engine.instance, d.engine.store).keeper_status(d.spec)
    assert st is not None
    return int(st["starts"])


def test_data_service_merge_and_abort_lose_nothing(data: Data) -> None:
    writes = Writes(data.kind, "127.0.0.1", data.port, threads=4).start()
    writes.wait_for(100)
    run_action(data, OperatorAction.SPLIT)
    run_action(data, OperatorAction.MERGE)
    writes.wait_for(100)
    assert starts(data) == 2  # the daemon really stopped and started at merge
    events = [e.event for e in data.engine.log.entries()]
    assert ("service.stop.deferred" in events) is (data.kind == "redis")
    run_action(data, OperatorAction.ABORT)
    writes.wait_for(100)
    report = writes.stop()
    assert starts(data) == 3
    assert writes.refused() == []
    assert report.failed == [], report.failed[:3]
    # Every acknowledged write is in the database (read past the proxy).
    missing = writes.acked - stored(data.kind, "127.0.0.1", data.upstream)
    assert not missing, sorted(missing)[:10]
    assert len(writes.acked) >= 300
    # Some writes were in flight from before the old instance exited until the new one
    # was healthy: they waited in the keeper through a switch instead of being refused.
    switches = [d for d in data.engine.store.docs("switchover").values()
                if d.get("old_exited") and d.get("healthy_at")]
    assert len(switches) == 2  # merge and abort
    for sw in switches:
        assert any(s.sent < sw["old_exited"] and s.done > sw["healthy_at"]
                   for s in report.samples if s.ok), sw
    run_action(data, OperatorAction.FINISH)
