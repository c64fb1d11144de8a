"""Resync benchmark: our resync against `rsync -a --delete` and `cp -a` on the same trees.

A volume of ``--files`` files (default 20,000) totalling ``--size-mib`` (default 1024 MiB);
then 1 % of the files changed on each side. Prints absolute figures and ratios.

    .venv/bin/python bench/resync.py [--dir /var/tmp/au-bench] [--files N] [--size-mib M]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.platform.volumes.verify import differences


def make_tree(root: Path, files: int, total: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    pool = os.urandom(8 << 20)
    per_dir = 100
    avg = total // files
    for i in range(files):
        d = root / f"d{i // per_dir:04d}" / f"s{(i // 10) % 10}"
        if i % 10 == 0:
            d.mkdir(parents=True, exist_ok=True)
        size = max(1, int(rng.uniform(0.2, 1.8) * avg))
        off = rng.randrange(0, len(pool) - size)
        (d / f"f{i:06d}.bin").write_bytes(pool[off:off + size])


def edit(root: Path, fraction: float, seed: int) -> int:
    """Change ``fraction`` of the files (rewrite, append, delete, create), reproducibly."""
    rng = random.Random(seed)
    paths = sorted(p for p in root.rglob("*.bin"))
    chosen = rng.sample(paths, max(1, int(len(paths) * fraction)))
    for n, p in enumerate(chosen):
        match n % 4:
            case 0:
                p.write_bytes(os.urandom(p.stat().st_size))
            case 1:
                with p.open("ab") as fh:
                    fh.write(b"appended")
            case 2:
                p.unlink()
            case _:
                (p.parent / f"new-{seed}-{n}.bin").write_bytes(os.urandom(40000))
    return len(chosen)


def timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True)


def _full_rounds(base: Path, size_mib: int, wanted: int = 3) -> int:
    """Rounds of full syncs that fit on the disk (each round writes two copies)."""
    free = shutil.disk_usage(base).free
    fits = int(free * 0.8) // ((2 * size_mib) << 20)
    if fits < 1:
        raise RuntimeError(f"{base}: {free >> 20} MiB free, a full-sync round needs "
                           f"{2 * size_mib} MiB; free some space or pass a smaller --size-mib")
    return min(wanted, fits)


def measure(base: Path, files: int, size_mib: int) -> dict[str, object]:
    """Build the tree under ``base``, measure side by side, print as it goes, clean up."""
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    src = base / "src"
    t = timed(lambda: make_tree(src, files, size_mib << 20))
    tree_note = f"tree: {files} files, {size_mib} MiB (made in {t:.1f}s)"
    print(tree_note)
    run(["sync"])

    # Full sync: cp -a vs ours in the order cp, ours, ours, cp, cp, ours (drift of the
    # host's speed during the run weighs on both alike), each run into a new directory.
    # Nothing is deleted between runs: on a disk mounted with online discard, as on the
    # VMs this is developed on, deleting a 1 GiB tree makes the writes that follow several
    # times slower, whichever program makes them.
    rounds_full = _full_rounds(base, size_mib)
    cp_times, our_times = [], []
    order = [("cp", "ours"), ("ours", "cp")] * rounds_full
    for round_, pair in enumerate(order[:rounds_full]):
        for who in pair:
            run(["sync"])
            if who == "cp":
                theirs = base / f"cp-{round_}"
                cp_times.append(timed(lambda t=theirs: run(["cp", "-a", str(src), str(t)])))
            else:
                ours, meta = base / f"ours-{round_}", base / f"meta-{round_}"
                meta.mkdir()
                manifest = Manifest(meta)
                state = SyncState()  # a fresh daemon's: nothing tracked yet
                our_times.append(timed(lambda o=ours, m=manifest, s=state: resync(
                    src, o, m, src_is_a=True, state=s)))
        print(f"  full sync round {round_ + 1} ({' then '.join(pair)}): "
              f"cp -a {cp_times[-1]:.3f}s  ours {our_times[-1]:.3f}s  "
              f"ratio {our_times[-1] / cp_times[-1]:.2f}")
    cp_full, ours_full = statistics.median(cp_times), statistics.median(our_times)
    print(f"full sync:   cp -a {cp_full:7.3f}s   ours {ours_full:7.3f}s   "
          f"ratio ours/cp = {ours_full / cp_full:.2f} (medians of {rounds_full}; goal <= 1.2)")
    run(["sync"])

    # 1 % changed on each side, the same edits on both destinations; three rounds
    rounds: list[tuple[float, float]] = []
    changed = 0
    res = None
    for round_ in range(3):
        changed = edit(src, 0.01, seed=10 + round_)
        edit(ours, 0.01, seed=20 + round_)
        edit(theirs, 0.01, seed=20 + round_)
        rs = timed(lambda: run(["rsync", "-a", "--delete", f"{src}/", f"{theirs}/"]))

        def ours_inc() -> None:
            nonlocal res
            res = resync(src, ours, manifest, src_is_a=True, state=state)

        oi = timed(ours_inc)
        rounds.append((rs, oi))
        print(f"  incremental round {round_ + 1} ({changed} files changed on each side): "
              f"rsync -a --delete {rs:.3f}s  ours {oi:.3f}s  speed-up {rs / oi:.2f}x")
    rs_med, oi_med = sorted(rounds, key=lambda r: r[0] / r[1])[1]
    print(f"incremental: median speed-up over rsync -a --delete = {rs_med / oi_med:.2f}x "
          "(goal >= 2)")
    print(f"  ours (last round): {res}")
    t_idle = timed(lambda: resync(src, ours, manifest, src_is_a=True, state=state))
    print(f"in-sync resync (nothing to do): ours {t_idle:.3f}s")
    diffs = differences(src, ours)
    print(f"verify ours == source: {'OK' if not diffs else diffs[:3]}")
    shutil.rmtree(base, ignore_errors=True)
    return {"cp_full": cp_full, "ours_full": ours_full, "rsync_inc": rs_med,
            "ours_inc": oi_med, "changed": changed, "idle": t_idle, "diffs": diffs,
            "tree": tree_note}


def rows(quick: bool, base: Path) -> list[dict[str, object]]:
    """The figures for ``bench/run.py``: full sync vs cp -a, resync vs rsync."""
    files, size = (2000, 50) if quick else (20_000, 1024)
    m = measure(base, files, size)
    if m["diffs"]:
        raise RuntimeError(f"our resync differs from its source: {m['diffs']}")
    return [
        {"figure": "full sync, headline tree", "unit": "s", "ours": m["ours_full"],
         "baseline": m["cp_full"], "baseline_name": "cp -a", "note": str(m["tree"])},
        {"figure": "resync, 1% changed on each side", "unit": "s", "ours": m["ours_inc"],
         "baseline": m["rsync_inc"], "baseline_name": "rsync -a --delete",
         "note": f"{m['changed']} files changed on each side; median of 3 rounds"},
        {"figure": "resync, nothing to do", "unit": "s", "ours": m["idle"], "baseline": None,
         "baseline_name": "-", "note": "in-sync replicas"},
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp/au-bench-resync")
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    m = measure(Path(args.dir), args.files, args.size_mib)
    sys.exit(1 if m["diffs"] else 0)


if __name__ == "__main__":
    main()
