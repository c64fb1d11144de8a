"""Engine overhead: a whole session on an empty configuration (no services, no actions, one
empty system volume: the least a session accepts).

What the tool itself costs around the operator's work: split → merge → commit → finish,
measured in-process (the engine on the host platform, no daemon) and through the CLI
(``au split`` ... ``au finish`` as separate commands, against the daemon, as an operator
runs them). The baseline of each CLI command is the interpreter starting the CLI and
doing nothing (``au --version``).

    .venv/bin/python bench/engine_overhead.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from activeupgrade.bus import Bus
from activeupgrade.config.model import VolumeRole
from activeupgrade.engine.engine import Engine
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperationalState, OperatorAction
from activeupgrade.platform.volumes import adoption, registry
from activeupgrade.session.host import HostPlatform
from activeupgrade.store.db import Store

SESSION = ("split", "merge", "commit", "finish")


def with_empty_volume(home: Path, volume: Path) -> Path:
    """Adopt an empty folder as the session's only volume (through the library) and write
    the configuration naming it; returns the file. The private link gets random addresses
    so that the benchmark does not collide with an Upgrade Side already up on this host."""
    instance = Instance(home)
    instance.ensure()
    volume.mkdir(parents=True, exist_ok=True)
    store = Store(instance.db)
    try:
        adoption.adopt(instance, store, str(volume), VolumeRole.SYSTEM)
    finally:
        store.close()
    net = random.randrange(1, 254), random.randrange(0, 64) * 4
    config = home / "empty.toml"
    config.write_text(
        f'description = "empty session"\n\n[[volume]]\npath = "{volume}"\n\n'
        f'[upgrade_side]\nhost_address = "169.254.{net[0]}.{net[1] + 1}/30"\n'
        f'side_address = "169.254.{net[0]}.{net[1] + 2}/30"\n')
    return config


def release_all(home: Path) -> None:
    """Give the volumes back (unmounts the bind mounts made as root)."""
    store = Store(Instance(home).db)
    try:
        for vol in registry.all_volumes(store):
            adoption.release(store, vol)
    finally:
        store.close()


def in_process_session(root: Path) -> float:
    instance = Instance(root / "home")
    config = with_empty_volume(instance.home, root / "volume")
    store = Store(instance.db)
    engine = Engine(instance, store, Bus(), HostPlatform(instance, store))
    engine.set_config(str(config))
    try:
        started = time.perf_counter()
        for action in SESSION:
            engine.submit(OperatorAction(action))
            status = engine.wait()
            if status.operational_state is not OperationalState.READY:
                raise RuntimeError(f"{action} ended {status.operational_state}: {status.reason}")
        return time.perf_counter() - started
    finally:
        store.close()
        release_all(instance.home)


def au(home: Path, *args: str) -> None:
    env = dict(os.environ, AU_HOME=str(home))
    if args[:1] == ("commit",):
        args = (*args, "--yes")  # no terminal to confirm the point of no return on
    done = subprocess.run([sys.executable, "-m", "activeupgrade", *args], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"au {' '.join(args)} exited {done.returncode}: "
                           f"{done.stderr.strip()[-500:]}")


def cli_session(root: Path) -> tuple[float, float]:
    """(seconds for the whole session, seconds of which starting the daemon)."""
    home = root / "cli-home"
    config = with_empty_volume(home, root / "cli-volume")
    try:
        started = time.perf_counter()
        au(home, "config", "load", str(config))
        daemon = time.perf_counter() - started
        for action in SESSION:
            au(home, action)
        total = time.perf_counter() - started
    finally:
        au(home, "daemon", "--stop")
        wait_gone(home / "api.sock")
        release_all(home)
    return total, daemon


def wait_gone(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def bare_cli() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "activeupgrade", "--version"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(repeats: int = 3) -> list[dict[str, Any]]:
    """The figures, as rows for bench/run.py's table (medians of ``repeats`` runs)."""
    inproc, cli, daemon, bare = [], [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="au-bench-engine-") as tmp:
            inproc.append(in_process_session(Path(tmp) / "inproc"))
            total, start = cli_session(Path(tmp))
            cli.append(total)
            daemon.append(start)
        bare.append(bare_cli())
    med = statistics.median
    per_command = (med(cli) - med(daemon)) / len(SESSION)
    return [
        {"figure": "engine: empty session in-process (split→finish)", "unit": "s",
         "ours": med(inproc), "baseline": None, "baseline_name": "",
         "note": "engine + host platform, no daemon"},
        {"figure": "engine: empty session through the CLI", "unit": "s",
         "ours": med(cli), "baseline": med(inproc), "baseline_name": "in-process",
         "note": f"includes daemon start + config load {med(daemon):.2f}s"},
        {"figure": "engine: one CLI action (submit + follow)", "unit": "s",
         "ours": per_command, "baseline": med(bare), "baseline_name": "au --version",
         "note": "interpreter start is most of it"},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    for row in measure(args.repeats):
        base = (f"{row['baseline_name']} {row['baseline']:.3f}s  ratio "
                f"{row['ours'] / row['baseline']:.2f}" if row["baseline"] else "")
        print(f"{row['figure']:<50} {row['ours']:8.3f}s  {base}  ({row['note']})")


if __name__ == "__main__":
    main()
