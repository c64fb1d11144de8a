"""Upgrade Side benchmark: building the private view and entering it, beside the bare
namespaces they replace (as root).

    .venv/bin/python bench/side.py [--dir /var/tmp/au-bench-side] [--rounds N]

- build: ``namespace.start`` of a split instance (one system and one data volume: the whole
  view, the user namespace lock, the private link) vs ``unshare --fork --pid --mount --uts
  --net --mount-proc true`` (namespaces and nothing in them);
- enter: one ``true`` run inside through the entering helper (root, namespaces, clean
  environment, credentials) vs ``nsenter -t PID -m -u -n -p true``;
- writes: listing what was written outside the volumes after ``apt``-sized churn (N files
  in /var/log-like folders) vs ``find`` over the same upper folder.

Each figure is the median of the rounds, in seconds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from activeupgrade import proc
from activeupgrade.bus import Bus
from activeupgrade.config.model import VolumeRole
from activeupgrade.engine.engine import Engine
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperationalState, OperatorAction
from activeupgrade.platform.side import namespace, writes
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.session.host import HostPlatform
from activeupgrade.store.db import Store


def act(engine: Engine, action: OperatorAction) -> None:
    engine.submit(action)
    status = engine.wait(600)
    if status.operational_state is not OperationalState.READY:
        raise SystemExit(f"{action} failed: {status.reason}")


def timed(fn: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(base: Path, rounds: int, files: int) -> list[tuple[str, float, float, str]]:
    """(figure, ours, baseline, baseline's name), medians in seconds."""
    shutil.rmtree(base, ignore_errors=True)
    software, data, home = base / "opt" / "app", base / "var" / "app", base / "home"
    software.mkdir(parents=True)
    data.mkdir(parents=True)
    (software / "version").write_text("1\n")
    instance = Instance(home)
    instance.ensure()
    store = Store(instance.db)
    adoption.adopt(instance, store, str(software), VolumeRole.SYSTEM)
    adoption.adopt(instance, store, str(data), VolumeRole.DATA)
    engine = Engine(instance, store, Bus(), HostPlatform(instance, store))
    act(engine, OperatorAction.SPLIT)
    session = engine.status().session
    cfg = engine.platform.session_config(session, "", stage=False)
    try:
        def rebuild() -> None:
            namespace.stop(instance, final_state="rebooting")
            namespace.start(instance, store, cfg, session)

        build = timed(rebuild, rounds)
        bare = timed(lambda: proc.run(["unshare", "--fork", "--pid", "--mount", "--uts",
                                       "--net", "--mount-proc", "true"]), rounds)
        pid = str(namespace.read(instance)["pid"])
        enter = timed(lambda: namespace.run(instance, ["true"]), rounds * 4)
        nsenter = timed(lambda: proc.run(["nsenter", "-t", pid, "-m", "-u", "-n", "-p",
                                          "true"]), rounds * 4)
        namespace.run(instance, ["sh", "-c", f"mkdir -p /var/log/bench && cd /var/log/bench"
                                 f" && seq {files} | xargs touch"], 600)
        listed = timed(lambda: writes.written(instance), rounds)
        upper = namespace.read(instance)["scratch"]
        find = timed(lambda: subprocess.run(["find", upper], capture_output=True, check=True),
                     rounds)
        return [("Upgrade Side: build it", build, bare, "bare unshare"),
                ("Upgrade Side: enter it, run true", enter, nsenter, "nsenter"),
                (f"Upgrade Side: list {files} writes outside", listed, find, "find")]
    finally:
        act(engine, OperatorAction.ABORT)
        act(engine, OperatorAction.FINISH)
        for v in registry.all_volumes(store):
            adoption.release(store, v)
        store.close()
        namespace.remove(instance)
        shutil.rmtree(base, ignore_errors=True)


def rows(quick: bool) -> list[dict[str, object]]:
    """The rows of ``bench/run.py``."""
    found = measure(Path("/var/tmp/au-bench-side"), 3 if quick else 5, 500 if quick else 2000)
    return [{"figure": name, "unit": "s", "ours": round(ours, 4),
             "baseline": round(theirs, 4), "baseline_name": what, "note": ""}
            for name, ours, theirs, what in found]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp/au-bench-side")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--files", type=int, default=2000)
    args = ap.parse_args()
    print(f"{'figure':<40} {'ours':>9} {'baseline':>9} {'ratio':>7}")
    for name, ours, theirs, what in measure(Path(args.dir), args.rounds, args.files):
        print(f"{name:<40} {ours:9.4f} {theirs:9.4f} {ours / theirs:7.1f}  vs {what} (s)")


if __name__ == "__main__":
    sys.exit(main())
