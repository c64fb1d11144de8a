"""Split benchmark: how long `split` takes for a duplexed volume of >= 1 GiB in >= 20,000
files (goal: under 1 s when the replicas are in sync), step by step.

    .venv/bin/python bench/split.py [--dir /var/tmp/au-bench-split] [--files N] [--size-mib M]

Runs as root (bind mounts, namespaces) or not (symlinks, directory Upgrade Side).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from resync import make_tree

from activeupgrade.bus import Bus
from activeupgrade.config.model import VolumeRole
from activeupgrade.engine.engine import Engine
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperationalState, OperatorAction
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.session.host import HostPlatform
from activeupgrade.store.db import Store


def act(engine: Engine, action: OperatorAction) -> float:
    t0 = time.perf_counter()
    engine.submit(action)
    status = engine.wait(600)
    took = time.perf_counter() - t0
    if status.operational_state is not OperationalState.READY:
        raise SystemExit(f"{action} failed: {status.reason}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp/au-bench-split")
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    base = Path(args.dir)
    shutil.rmtree(base, ignore_errors=True)
    vol_path, home = base / "opt" / "app", base / "home"
    vol_path.mkdir(parents=True)
    make_tree(vol_path, args.files, args.size_mib << 20)
    instance = Instance(home)
    instance.ensure()
    store = Store(instance.db)
    t0 = time.perf_counter()
    vol = adoption.adopt(instance, store, str(vol_path), VolumeRole.SYSTEM)
    print(f"volume: {args.files} files, {args.size_mib} MiB; adopted ({vol.mode} live path) "
          f"in {time.perf_counter() - t0:.1f}s")
    time.sleep(0.1)
    engine = Engine(instance, store, Bus(), HostPlatform(instance, store))
    took = act(engine, OperatorAction.SPLIT)
    steps = store.query(
        "SELECT message, details FROM log WHERE event = 'step.done' ORDER BY id")
    print(f"split (in sync): {took:.3f}s  (goal < 1 s)")
    for row in steps:
        d = json.loads(row["details"])
        print(f"  {d['step']:<28} {d['seconds']:.3f}s")
    act(engine, OperatorAction.ABORT)
    act(engine, OperatorAction.FINISH)
    for v in registry.all_volumes(store):
        adoption.release(store, v)
    store.close()
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
