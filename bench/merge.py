"""Merge switchover benchmark: our held-socket switchover against a naive stop/start.

The same test service (``tests/services/httpapp.py``: a small HTTP server, with a start
delay standing for an application's start-up) is replaced by a new version under the
same load (``--threads`` clients sending requests back to back over fresh connections):

- **ours**: the keeper holds the listening socket; the old application is stopped, the
  new one started on the same socket (connecting clients wait in the backlog);
- **naive**: the application binds its own socket; it is stopped (its socket closes) and
  the new one started and binds again — a plain stop/start restart.

Both are driven by the same supervisor code (the naive service simply declares no
sockets). Prints, per variant, requests sent, failed, the longest client wait, p99 and the
client-side gap, plus the stop/start durations, then the ratios naive/ours.

Then one whole merge through the engine (split → merge → commit) with the software on a
real managed volume, under the same load: requests, failures, longest wait, and the
stop / switch / start durations the tool logged (``service.switchover``).

    .venv/bin/python bench/merge.py [--threads 16] [--rounds 5] [--start-delay 0.3]
"""

from __future__ import annotations

import argparse
import importlib
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from activeupgrade.config.model import HealthKind, HealthSpec, ServiceSpec, SocketSpec
from activeupgrade.instance import Instance
from activeupgrade.platform.services.supervisor import Supervisor
from activeupgrade.store.db import Store

TOP = Path(__file__).resolve().parent.parent
APP = TOP / "tests" / "services" / "httpapp.py"
sys.path.insert(0, str(TOP))
# The load client of the tests: the same measurement in the tests and here.
Load: Any = importlib.import_module("tests.services.load").Load


def spec(port: int, version: str, delay: float, held: bool) -> ServiceSpec:
    argv = [sys.executable, str(APP), "--version", version, "--start-delay", str(delay)]
    if not held:
        argv += ["--bind", f"127.0.0.1:{port}"]
    return ServiceSpec(
        name="bench-held" if held else "bench-naive",
        command=tuple(argv),
        sockets=(SocketSpec("http", f"127.0.0.1:{port}", backlog=4096),) if held else (),
        health=HealthSpec(HealthKind.HTTP, f"http://127.0.0.1:{port}/", timeout=2.0,
                          interval=0.01),
        stop_grace=10.0,
        start_timeout=30.0,
    )


def one_round(sup: Supervisor, port: int, delay: float, held: bool, threads: int,
              settle: float) -> dict[str, Any]:
    old = spec(port, "v1", delay, held)
    sup.start(old)
    load = Load("127.0.0.1", port, threads=threads, timeout=30.0).start()
    time.sleep(settle)
    stopped = sup.stop(old)
    started = sup.start(spec(port, "v2", delay, held))
    time.sleep(settle)
    report = load.stop()
    sup.stop(old)
    return {**report.summary(), "stop_s": round(stopped.seconds, 4),
            "start_s": round(started.seconds, 4),
            "gap_s": round(started.healthy_at - stopped.exited_at, 4)}


def run(held: bool, rounds: int, threads: int, delay: float, settle: float) -> list[
    dict[str, Any]
]:
    with tempfile.TemporaryDirectory(prefix="au-bench-merge-") as tmp:
        inst = Instance(Path(tmp) / "home")
        inst.ensure()
        store = Store(inst.db)
        sup = Supervisor(inst, store)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            return [one_round(sup, port, delay, held, threads, settle) for _ in range(rounds)]
        finally:
            sup.shutdown(spec(port, "v1", delay, held))
            store.close()


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "sent": sum(r["sent"] for r in rows),
        "failed": sum(r["failed"] for r in rows),
        "longest_wait_s": max(r["longest_wait_s"] for r in rows),
        "p99_s": statistics.median(r["p99_s"] for r in rows),
        "client_gap_s": statistics.median(r["client_gap_s"] for r in rows),
        "stop_s": statistics.median(r["stop_s"] for r in rows),
        "start_s": statistics.median(r["start_s"] for r in rows),
    }


def session_merge(threads: int, delay: float, settle: float) -> dict[str, Any]:
    """One real merge through the engine, software on a managed volume, under load."""
    from dataclasses import replace

    from activeupgrade.config.model import Config, VolumeRole, VolumeSpec
    from activeupgrade.model.states import OperationalState, OperatorAction
    from activeupgrade.platform.volumes import adoption, registry
    from activeupgrade.platform.volumes.livepath import SYMLINK

    helpers = importlib.import_module("tests.actions.helpers")
    with tempfile.TemporaryDirectory(prefix="au-bench-session-") as tmp:
        software = Path(tmp) / "opt-shop"
        software.mkdir()
        (software / "httpapp.py").write_bytes(APP.read_bytes())
        (software / "VERSION").write_text("v1\n")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        svc = replace(spec(port, "v1", delay, True), name="shop", command=(
            sys.executable, str(software / "httpapp.py"), "--version-file",
            str(software / "VERSION"), "--start-delay", str(delay)))
        cfg = Config(volumes=(VolumeSpec(str(software)),), services=(svc,))
        engine, store = helpers.make_engine(Path(tmp) / "home", cfg,
                                            ("volumes.", "services.", "backup."))
        adoption.adopt(engine.instance, store, str(software), VolumeRole.SYSTEM, mode=SYMLINK)
        sup = Supervisor(engine.instance, store)
        sup.start(svc)
        try:
            load = Load("127.0.0.1", port, threads=threads, timeout=30.0).start()
            time.sleep(settle)
            for action in (OperatorAction.SPLIT, OperatorAction.MERGE):
                if action is OperatorAction.MERGE:
                    vol = registry.by_path(store, str(software))
                    assert vol is not None
                    upgraded = Path(vol.replica(vol.session["upgrade"]))
                    (upgraded / "VERSION").write_text("v2\n")
                st = helpers.act(engine, action)
                if st.operational_state is not OperationalState.READY:
                    raise RuntimeError(f"{action}: {st.reason}")
            time.sleep(settle)
            report = load.stop()
            helpers.act(engine, OperatorAction.COMMIT)
            helpers.act(engine, OperatorAction.FINISH)
        finally:
            sup.shutdown(svc)
        [sw] = [e.details for e in engine.log.entries() if e.event == "service.switchover"]
        return {**report.summary(), "versions": [v.split()[0] for v in report.servers()],
                "stop_s": sw["stop_seconds"], "switch_s": sw["switch_seconds"],
                "switch_steps": sw["switch_steps"], "start_s": sw["start_seconds"],
                "gap_s": sw["gap_seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--start-delay", type=float, default=0.3,
                        help="seconds the application takes to start")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of load before and after each switchover")
    args = parser.parse_args()
    results = {
        "ours": summarise(run(True, args.rounds, args.threads, args.start_delay, args.settle)),
        "naive": summarise(run(False, args.rounds, args.threads, args.start_delay,
                               args.settle)),
    }
    print(f"merge switchover, {args.rounds} rounds, {args.threads} clients, application "
          f"start-up {args.start_delay:.2f}s")
    keys = ["sent", "failed", "longest_wait_s", "p99_s", "client_gap_s", "stop_s", "start_s"]
    print(f"{'':16}{'ours (held socket)':>20}{'naive stop/start':>20}{'naive/ours':>12}")
    for k in keys:
        a, b = results["ours"][k], results["naive"][k]
        ratio = "n/a" if a == 0 else f"{b / a:.2f}x"
        if a == 0 and b > 0:
            ratio = "inf"
        fmt = "{:>20.0f}" if k in ("sent", "failed") else "{:>20.4f}"
        print(f"{k:16}" + fmt.format(a) + fmt.format(b) + f"{ratio:>12}")
    one = session_merge(args.threads, args.start_delay, args.settle)
    print()
    print("one merge through the engine (software on a managed volume, same load):")
    print(f"  requests sent {one['sent']}, failed {one['failed']}, longest client wait "
          f"{one['longest_wait_s']:.3f}s, p99 {one['p99_s']:.4f}s, served by "
          f"{' then '.join(one['versions'])}")
    steps = ", ".join(f"{x['step']} {x['seconds']}s" for x in one["switch_steps"])
    print(f"  stop {one['stop_s']:.3f}s, switch {one['switch_s']:.3f}s ({steps}), "
          f"start {one['start_s']:.3f}s, no instance serving for {one['gap_s']:.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
