"""Real daemons through the switch: Debian's nginx, Redis and PostgreSQL, side by side.

For each daemon, under the same constant load, in one run:

- **tool merge**: split → (the "upgrade" writes a new configuration into the Upgrade
  Side's replica) → merge through the engine, the configuration on a real managed system
  volume; nginx in overlap mode (``handover = "nginx"``), Redis and PostgreSQL through the
  keeper's proxy (``handover = "proxy"``; Redis with ``switchover = "late-stop"``,
  PostgreSQL stop-start and stopped with SIGINT, and once more with late-stop);
- **plain restart**: the daemon binds its own port, is stopped and started again (what
  ``systemctl restart`` does), no tool in between;
- **nginx USR2** (nginx only): its own binary upgrade, USR2 to the master, WINCH, QUIT.

Load (in a process of its own): nginx 8 keep-alive clients + 4 clients opening a
connection per request; Redis and PostgreSQL 4 writers (a connection per acknowledged
write). Printed per daemon and variant: operations, failed (refused apart), acknowledged
writes lost, the longest wait of the whole run, of the requests in flight during the
switch ("in switch") and before it ("steady": the machine's own stalls), p99 and the
steady-state p99, and the daemon's own stop + start (goals: overlap services' "in switch"
within 50 ms of the steady p99; stop-then-start ones no more than their own stop + start +
50 ms).

    .venv/bin/python bench/daemons.py [--settle 1.5] [--only nginx,redis,postgres]
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP))

from activeupgrade import proc  # noqa: E402
from activeupgrade.config.model import (  # noqa: E402
    Config,
    Handover,
    ServiceSpec,
    Switchover,
    VolumeRole,
    VolumeSpec,
)
from activeupgrade.model.states import OperationalState, OperatorAction  # noqa: E402
from activeupgrade.platform.services.supervisor import Supervisor  # noqa: E402
from activeupgrade.platform.volumes import adoption, registry  # noqa: E402
from activeupgrade.platform.volumes.livepath import SYMLINK  # noqa: E402

helpers: Any = importlib.import_module("tests.actions.helpers")
load_mod: Any = importlib.import_module("tests.services.load")
writes_mod: Any = importlib.import_module("tests.services.writes")
web: Any = importlib.import_module("tests.services.test_nginx")
data: Any = importlib.import_module("tests.services.test_data")
support: Any = importlib.import_module("tests.support")


def _loads(kind: str, port: int) -> list[Any]:
    if kind == "nginx":
        return [load_mod.Load("127.0.0.1", port, threads=8, keepalive=True),
                load_mod.Load("127.0.0.1", port, threads=4)]
    return [writes_mod.Writes(kind, "127.0.0.1", port, threads=4)]


def _client_process(kind: str, port: int, conn: Connection) -> None:
    loads = _loads(kind, port)
    for ld in loads:
        ld.start()
    conn.send("started")
    conn.recv()  # stop
    reports = [ld.stop() for ld in loads]
    acked: set[int] = set().union(*(getattr(ld, "acked", set()) for ld in loads))
    conn.send(([s for r in reports for s in r.samples], acked))


class Clients:
    """The load of one daemon kind, in a process of its own (so that the engine's work in
    this process does not slow the clients down: every variant is measured alike)."""

    def __init__(self, kind: str, port: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_client_process, args=(kind, port, child),
                                   daemon=True)
        self.process.start()
        self.conn.recv()
        self._acked: set[int] = set()

    def stop(self) -> Any:
        self.conn.send("stop")
        samples, self._acked = self.conn.recv()
        self.process.join(30)
        return load_mod.Report(samples)

    def acked(self) -> set[int]:
        return self._acked


def figures(report: Any, switch_at: float, lost: int, own: float,
            switch_end: float = 0.0) -> dict[str, Any]:
    steady = load_mod.Report([s for s in report.samples if s.done < switch_at])
    p99_steady = steady.percentile(99)
    # The requests in flight while the switch ran (the machine's own stalls elsewhere in
    # the run do not count there).
    during = [s.wait for s in report.samples
              if s.done >= switch_at and s.sent <= (switch_end or switch_at)]
    return {
        "switch_longest_s": max(during, default=0.0),
        "steady_longest_s": steady.longest_wait,
        "ops": report.sent, "failed": len(report.failed),
        "refused": sum("ConnectionRefused" in s.error for s in report.failed),
        "lost": lost, "longest_wait_s": report.longest_wait,
        "p99_s": report.percentile(99), "steady_p99_s": p99_steady,
        "beyond_steady_s": max(0.0, report.longest_wait - p99_steady),
        "own_stop_start_s": own,
    }


def _lost(kind: str, clients: Clients, port: int) -> int:
    if kind == "nginx":
        return 0
    return len(clients.acked() - writes_mod.stored(kind, "127.0.0.1", port))


def setup(kind: str, tmp: Path, port: int, upstream: int) -> tuple[ServiceSpec, Path, Path]:
    """The service spec, its configuration folder (a volume) and its data folder."""
    software = tmp / "etc"
    software.mkdir()
    folder = Path(tempfile.mkdtemp(prefix=f"au-bench-{kind}-", dir="/tmp"))
    if kind == "nginx":
        (folder / "body").mkdir()
        web.write_conf(software, folder, port, "v1")
        return web.nginx_spec(software, port), software, folder
    (software / "VERSION").write_text("v1\n")
    if kind == "postgres":
        data._postgres_cluster(folder)
        return data.postgres_spec(folder, port, upstream), software, folder
    return data.redis_spec(folder, port, upstream), software, folder


def _prepare_pg(port: int) -> None:
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        writes_mod.pg_login(s)
        writes_mod.pg_query(s, "CREATE TABLE IF NOT EXISTS writes (n bigint PRIMARY KEY)")


def tool_merge(kind: str, settle: float, switch: str = "") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="au-bench-daemons-") as t:
        tmp = Path(t)
        port, upstream = support.free_port(), support.free_port()
        spec, software, folder = setup(kind, tmp, port, upstream)
        if switch:
            spec = replace(spec, switchover=Switchover(switch))
        cfg = Config(volumes=(VolumeSpec(str(software)),), services=(spec,))
        engine, store = helpers.make_engine(tmp / "home", cfg, ("volumes.", "services."))
        adoption.adopt(engine.instance, store, str(software), VolumeRole.SYSTEM, mode=SYMLINK)
        sup = Supervisor(engine.instance, store)
        sup.start(spec)
        try:
            if kind == "postgres":
                _prepare_pg(port)
            st = helpers.act(engine, OperatorAction.SPLIT)
            assert st.operational_state is OperationalState.READY, st.reason
            vol = registry.by_path(store, str(software))
            assert vol is not None
            upgraded = Path(vol.replica(vol.session["upgrade"]))
            if kind == "nginx":
                web.write_conf(upgraded, folder, port, "v2")
            else:
                (upgraded / "VERSION").write_text("v2\n")
            clients = Clients(kind, port)
            time.sleep(settle)
            switch_at = time.time()
            st = helpers.act(engine, OperatorAction.MERGE)
            assert st.operational_state is OperationalState.READY, st.reason
            switch_end = time.time()
            time.sleep(settle)
            report = clients.stop()
            lost = _lost(kind, clients, upstream)
            [sw] = [e.details for e in engine.log.entries() if e.event == "service.switchover"]
            helpers.act(engine, OperatorAction.COMMIT)
            helpers.act(engine, OperatorAction.FINISH)
        finally:
            sup.shutdown(spec)
            shutil.rmtree(folder, ignore_errors=True)
        own = float(sw["stop_seconds"]) + float(sw["start_seconds"])
        return figures(report, switch_at, lost, own, switch_end)


def plain_restart(kind: str, settle: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="au-bench-daemons-") as t:
        tmp = Path(t)
        port = support.free_port()
        # No tool in between: the daemon binds the public port itself.
        spec, _, folder = setup(kind, tmp, port, port)
        spec = replace(spec, name=f"plain-{kind}", sockets=(), handover=Handover.LISTEN_FDS)
        inst, store = importlib.import_module("tests.services.helpers").open_instance(
            tmp / "home")
        sup = Supervisor(inst, store)
        sup.start(spec)
        try:
            if kind == "postgres":
                _prepare_pg(port)
            clients = Clients(kind, port)
            time.sleep(settle)
            switch_at = time.time()
            stopped = sup.stop(spec)
            started = sup.start(spec)
            switch_end = time.time()
            time.sleep(settle)
            report = clients.stop()
            lost = _lost(kind, clients, port)
        finally:
            sup.shutdown(spec)
            shutil.rmtree(folder, ignore_errors=True)
        return figures(report, switch_at, lost, stopped.seconds + started.seconds, switch_end)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait(cond: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)


def nginx_usr2(settle: float) -> dict[str, Any]:
    """nginx's own binary upgrade: USR2 (new master), WINCH (old workers leave), QUIT."""
    with tempfile.TemporaryDirectory(prefix="au-bench-daemons-") as t:
        tmp = Path(t)
        port = support.free_port()
        _, software, folder = setup("nginx", tmp, port, port)
        # nginx honours USR2 only when its parent changed: it must daemonize.
        conf = software / "nginx.conf"
        conf.write_text(conf.read_text().replace("daemon off;", "daemon on;"))
        proc.run([web.NGINX, "-c", str(conf)], timeout=30)
        pidfile = folder / "nginx.pid"
        master = int(pidfile.read_text())
        new: list[int] = []
        try:
            _wait(lambda: len(_children(master)) >= 2, 20, "nginx's workers")
            clients = Clients("nginx", port)
            time.sleep(settle)
            switch_at = time.time()
            began = time.monotonic()
            os.kill(master, signal.SIGUSR2)

            def new_master_serving() -> bool:
                kids = [c for c in _children(master)
                        if len(_children(c)) >= 2]  # the new master, with its workers
                new[:] = kids
                return bool(kids)

            _wait(new_master_serving, 20, "the new master's workers")
            os.kill(master, signal.SIGWINCH)
            os.kill(master, signal.SIGQUIT)
            _wait(lambda: not proc.alive(master), 30, "the old master to quit")
            own = time.monotonic() - began
            switch_end = time.time()
            time.sleep(settle)
            report = clients.stop()
        finally:
            for pid in [master, *new]:
                proc.signal_pid(pid, signal.SIGQUIT)
            for pid in [master, *new]:
                _wait(lambda p=pid: not proc.alive(p), 30, "nginx to quit")
            if os.environ.get("AU_BENCH_KEEP") != "1":
                shutil.rmtree(folder, ignore_errors=True)
        return figures(report, switch_at, 0, own, switch_end)


VARIANTS = {
    "nginx": [("tool merge (overlap)", lambda s: tool_merge("nginx", s)),
              ("plain restart", lambda s: plain_restart("nginx", s)),
              ("nginx USR2 upgrade", nginx_usr2)],
    "redis": [("tool merge (late-stop)", lambda s: tool_merge("redis", s)),
              ("plain restart", lambda s: plain_restart("redis", s))],
    "postgres": [("tool merge (proxy)", lambda s: tool_merge("postgres", s)),
                 ("plain restart", lambda s: plain_restart("postgres", s)),
                 ("tool merge, late-stop", lambda s: tool_merge("postgres", s, "late-stop"))],
}


def rows(quick: bool) -> list[dict[str, Any]]:
    """Rows for ``bench/run.py``: per daemon, the tool merge against the plain restart."""
    settle = 0.7 if quick else 1.5
    out: list[dict[str, Any]] = []
    for kind, variants in VARIANTS.items():
        tool, plain = variants[0][1](settle), variants[1][1](settle)
        out += [
            {"figure": f"daemons: {kind} failed operations", "unit": "", "ours": tool["failed"],
             "baseline": plain["failed"], "baseline_name": "plain restart",
             "note": f"{tool['ops']} vs {plain['ops']} operations; refused "
                     f"{tool['refused']} vs {plain['refused']}; lost {tool['lost']}"},
            {"figure": f"daemons: {kind} longest wait", "unit": "s",
             "ours": tool["longest_wait_s"], "baseline": plain["longest_wait_s"],
             "baseline_name": "plain restart",
             "note": f"in the switch {tool['switch_longest_s']:.4f}s vs "
                     f"{plain['switch_longest_s']:.4f}s; steady p99 "
                     f"{tool['steady_p99_s']:.4f}s; own stop+start "
                     f"{tool['own_stop_start_s']:.3f}s"},
            {"figure": f"daemons: {kind} p99", "unit": "s", "ours": tool["p99_s"],
             "baseline": plain["p99_s"], "baseline_name": "plain restart", "note": ""},
        ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=1.5,
                        help="seconds of load before and after the switch")
    parser.add_argument("--only", default="nginx,redis,postgres")
    args = parser.parse_args()
    head = (f"{'':30}{'ops':>7}{'failed':>8}{'refused':>8}{'lost':>6}{'longest':>10}"
            f"{'in switch':>11}{'steady':>9}{'p99':>9}{'steady p99':>11}{'own stop+start':>16}")
    print(head)
    for kind in args.only.split(","):
        rows = [(name, fn(args.settle)) for name, fn in VARIANTS[kind]]
        tool = rows[0][1]
        for name, r in rows:
            ratio = (f"  (longest {r['longest_wait_s'] / tool['longest_wait_s']:.2f}x tool)"
                     if tool["longest_wait_s"] and r is not tool else "")
            print(f"{kind + ' ' + name:30}{r['ops']:>7}{r['failed']:>8}{r['refused']:>8}"
                  f"{r['lost']:>6}{r['longest_wait_s'] * 1000:>8.1f}ms"
                  f"{r['switch_longest_s'] * 1000:>9.1f}ms"
                  f"{r['steady_longest_s'] * 1000:>7.1f}ms"
                  f"{r['p99_s'] * 1000:>7.1f}ms{r['steady_p99_s'] * 1000:>9.1f}ms"
                  f"{r['own_stop_start_s'] * 1000:>14.1f}ms{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
