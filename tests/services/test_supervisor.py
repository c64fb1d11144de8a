"""The built-in supervisor with real keepers, real applications and real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from activeupgrade.config.model import HealthKind, HealthSpec, ServiceSpec, SocketSpec
from activeupgrade.errors import ServiceError
from activeupgrade.platform.services.supervisor import Supervisor, adopt_all

from .helpers import app_spec, free_port, open_instance
from .load import Load


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return str(r.read().decode().strip())


def test_start_passes_held_socket_and_listen_env(sup: Supervisor) -> None:
    port = free_port()
    spec = app_spec("shop", port)
    started = sup.start(spec)
    version, pid = get(port).split()
    assert version == "v1" and int(pid) == started.pid
    st = sup.status(spec, probe=True)
    assert st.running and st.healthy and st.keeper_pid not in (0, started.pid)
    assert st.sockets == [{"name": "http", "listen": f"127.0.0.1:{port}", "fd": 3}]
    # The app checks LISTEN_PID == its own pid and exits 2 otherwise; its log says so.
    log = Path(st.log).read_text()
    assert f"v1 serving as pid {started.pid} names=http" in log
    # Stop: the application is gone, the keeper still holds the socket (connect succeeds
    # and waits in the backlog instead of being refused).
    stopped = sup.stop(spec)
    assert not stopped.already
    assert not sup.status(spec).running
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert sup.stop(spec).already  # idempotent


def test_clients_wait_through_stop_start_without_failure(sup: Supervisor) -> None:
    port = free_port()
    spec = app_spec("shop", port)
    sup.start(spec)
    load = Load("127.0.0.1", port, threads=8).start()
    load.wait_for(200)
    sup.stop(spec)
    time.sleep(0.3)  # nothing serves: clients must wait, not fail
    sup.start(app_spec("shop", port, version="v2", start_delay=0.2))
    load.wait_for(200)
    report = load.stop()
    assert report.failed == [], report.failed[:3]
    versions = [s.split()[0] for s in report.servers()]
    assert versions[0] == "v1" and versions[-1] == "v2"
    assert report.longest_wait >= 0.3  # some clients did wait through the stop


def test_unix_socket_and_command_health(sup: Supervisor, tmp_path: Path) -> None:
    path = tmp_path / "run" / "app.sock"
    script = tmp_path / "unixapp.py"
    script.write_text(textwrap.dedent("""
        import os, socket
        s = socket.socket(fileno=3)
        assert s.family == socket.AF_UNIX
        while True:
            c, _ = s.accept()
            c.sendall(b"hello " + os.environ["LISTEN_FDNAMES"].encode())
            c.close()
    """))
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(f"""
        import socket, sys
        s = socket.socket(socket.AF_UNIX); s.connect({str(path)!r})
        sys.exit(0 if s.recv(100) == b"hello ctl" else 1)
    """))
    spec = ServiceSpec(
        name="unixapp", command=(sys.executable, str(script)),
        sockets=(SocketSpec("ctl", str(path)),),
        health=HealthSpec(HealthKind.COMMAND, argv=(sys.executable, str(probe))),
        stop_grace=1,
    )
    sup.start(spec)
    assert sup.status(spec, probe=True).healthy
    sup.shutdown(spec)
    assert not path.exists()


def test_app_that_ignores_stop_signal_is_killed_after_grace(sup: Supervisor,
                                                            tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "stubborn.py"
    ready = tmp_path / "ready"
    script.write_text(
        "import signal, socket, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "s = socket.socket(fileno=3)\n"
        "while True:\n    c, _ = s.accept(); c.close()\n"
    )
    # A TCP connect succeeds as soon as the keeper holds the socket, so readiness here is
    # the app's own marker file (a command health check).
    spec = ServiceSpec(name="stubborn", command=(sys.executable, str(script)),
                       sockets=(SocketSpec("t", f"127.0.0.1:{port}"),),
                       health=HealthSpec(HealthKind.COMMAND, argv=("test", "-e", str(ready))),
                       stop_grace=0.5)
    sup.start(spec)
    result = sup.stop(spec)
    assert result.killed and result.seconds >= 0.5


def test_start_failure_is_explained(sup: Supervisor, tmp_path: Path) -> None:
    spec = ServiceSpec(name="broken", command=(str(tmp_path / "nope"),))
    with pytest.raises(ServiceError, match="cannot start broken"):
        sup.start(spec)
    crash = ServiceSpec(name="crash", command=(sys.executable, "-c", "raise SystemExit(3)"),
                        health=HealthSpec(HealthKind.TCP, f"127.0.0.1:{free_port()}"))
    with pytest.raises(ServiceError, match="exited before it was healthy"):
        sup.start(crash)


OWNER = """
import sys, time
from activeupgrade.instance import Instance
from activeupgrade.store.db import Store
from activeupgrade.platform.services.supervisor import Supervisor
sys.path.insert(0, {tests!r})
from services.helpers import app_spec
from pathlib import Path
inst = Instance(Path({home!r})); inst.ensure()
sup = Supervisor(inst, Store(inst.db))
sup.start(app_spec("shop", {port}))
print("started", flush=True)
time.sleep(600)
"""


def test_sigkill_of_the_owner_keeps_serving_and_is_readopted(tmp_path: Path) -> None:
    """A daemon-like owner starts the service, then dies by SIGKILL under load."""
    port = free_port()
    home = tmp_path / "home"
    tests = str(Path(__file__).parent.parent)
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER.format(tests=tests, home=str(home), port=port)],
        stdout=subprocess.PIPE, text=True,
    )
    assert owner.stdout is not None
    assert owner.stdout.readline().strip() == "started"
    inst, store = open_instance(home)
    try:
        killed_owner_scenario(owner, port, Supervisor(inst, store))
    finally:
        owner.kill()
        Supervisor(inst, store).shutdown(app_spec("shop", port))


def killed_owner_scenario(owner: subprocess.Popen[str], port: int, sup: Supervisor) -> None:
    load = Load("127.0.0.1", port, threads=4).start()
    load.wait_for(100)
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    load.wait_for(300)
    # A new owner (the restarted daemon) re-adopts the keeper and drives it.
    assert adopt_all(sup.instance, sup.store)["shop"].startswith("adopted")
    spec = app_spec("shop", port)
    before = sup.status(spec)
    assert before.running
    sup.stop(spec)
    sup.start(app_spec("shop", port, version="v2"))
    load.wait_for(100)
    report = load.stop()
    after = sup.status(spec)
    assert after.keeper_pid == before.keeper_pid  # the same keeper: adopted, not replaced
    assert report.failed == [], report.failed[:3]
    assert report.servers()[-1].startswith("v2")
