"""Debian's nginx through merge and abort from merge in overlap mode, under load.

nginx takes the keeper's socket through its own ``NGINX`` variable (non-blocking, as it
expects); its configuration lives on a real managed system volume and says which version
answers (``v1`` on the original replica, ``v2`` written into the Upgrade Side's replica).
At merge the upgraded nginx starts beside the running one, serves, and only then the old
master gets SIGQUIT (finish the requests in flight, close idle keep-alive connections).
Keep-alive clients and clients opening a connection per request run throughout: not one
request fails; keep-alive clients whose idle connection the old nginx closed send again on
a new one, as HTTP clients do.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from activeupgrade.config.model import (
    Config,
    Handover,
    HealthKind,
    HealthSpec,
    Readiness,
    ServiceSpec,
    SocketSpec,
    Switchover,
    VolumeRole,
    VolumeSpec,
)
from activeupgrade.engine.engine import Engine
from activeupgrade.model.states import OperationalState, OperatorAction
from activeupgrade.platform.services.supervisor import Supervisor
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.platform.volumes.livepath import SYMLINK
from activeupgrade.store.db import Store
from tests.actions.helpers import act, make_engine

from .helpers import free_port
from .load import Load, Report

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ONLY = ("volumes.", "services.")

CONF = """daemon off;
master_process on;
worker_processes 2;
pid {run}/nginx.pid;
error_log {run}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "{version} $pid\\n"; }}
    }}
}}
"""


def nginx_spec(software: Path, port: int) -> ServiceSpec:
    """The worked configuration of docs/services-and-actions.md, in code."""
    return ServiceSpec(
        name="web",
        command=(NGINX, "-c", str(software / "nginx.conf")),
        sockets=(SocketSpec("http", f"127.0.0.1:{port}"),),
        handover=Handover.NGINX,
        switchover=Switchover.OVERLAP,
        ready=Readiness.CHILDREN,
        stop_signal="SIGQUIT",
        stop_grace=10.0,
        start_timeout=20.0,
        health=HealthSpec(HealthKind.HTTP, f"http://127.0.0.1:{port}/", timeout=2.0,
                          interval=0.02),
    )


@dataclass
class Web:
    engine: Engine
    store: Store
    spec: ServiceSpec
    port: int
    software: Path

    def upgrade_replica(self) -> Path:
        vol = registry.by_path(self.store, str(self.software))
        assert vol is not None and vol.session.get("upgrade")
        return Path(vol.replica(vol.session["upgrade"]))


def write_conf(folder: Path, run: Path, port: int, version: str) -> None:
    (folder / "nginx.conf").write_text(CONF.format(run=run, port=port, version=version))


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    software, run = tmp_path / "etc-web", tmp_path / "run"
    software.mkdir()
    run.mkdir()
    port = free_port()
    write_conf(software, run, port, "v1")
    spec = nginx_spec(software, port)
    cfg = Config(volumes=(VolumeSpec(str(software)),), services=(spec,))
    engine, store = make_engine(tmp_path / "home", cfg, ONLY)
    adoption.adopt(engine.instance, store, str(software), VolumeRole.SYSTEM, mode=SYMLINK)
    sup = Supervisor(engine.instance, store)
    sup.start(spec)
    yield Web(engine, store, spec, port, software)
    sup.shutdown(spec)


def run_action(web: Web, action: OperatorAction) -> None:
    st = act(web.engine, action)
    assert st.operational_state is OperationalState.READY, st.reason


def both(web: Web) -> tuple[Load, Load]:
    kept = Load("127.0.0.1", web.port, threads=8, keepalive=True).start()
    fresh = Load("127.0.0.1", web.port, threads=4).start()
    kept.wait_for(300)
    fresh.wait_for(100)
    return kept, fresh


def check_switch(reports: tuple[Report, Report], old: str, new: str) -> None:
    for report in reports:
        assert report.failed == [], report.failed[:3]
    kept, fresh = reports
    samples = sorted(kept.samples + fresh.samples, key=lambda s: s.done)
    first_new = min(s.done for s in samples if s.server.startswith(new))
    last_old = max(s.done for s in samples if s.server.startswith(old))
    assert first_new < last_old  # overlap: both versions answered for a moment
    assert all(s.server.startswith(new) for s in samples[-50:])


def test_nginx_overlap_merge_and_abort_without_failed_request(web: Web) -> None:
    kept, fresh = both(web)
    run_action(web, OperatorAction.SPLIT)
    write_conf(web.upgrade_replica(), web.software.parent / "run", web.port, "v2")
    run_action(web, OperatorAction.MERGE)
    kept.wait_for(300)
    fresh.wait_for(100)
    check_switch((kept.stop(), fresh.stop()), "v1", "v2")
    events = [e.event for e in web.engine.log.entries()]
    assert "service.stop.deferred" in events and "service.retired" in events
    [sw] = [e.details for e in web.engine.log.entries() if e.event == "service.switchover"]
    assert not sw["killed"]

    kept, fresh = both(web)
    run_action(web, OperatorAction.ABORT)
    kept.wait_for(300)
    fresh.wait_for(100)
    check_switch((kept.stop(), fresh.stop()), "v2", "v1")
    run_action(web, OperatorAction.FINISH)
