"""How resync grows: time for 1 %, 10 %, 100 % of the files changed, and for 10k and 100k
files, each against ``rsync -a --delete`` on the same trees with the same edits (and the
first full sync against ``cp -a``).

    .venv/bin/python bench/growth.py [--dir /var/tmp/au-bench-growth] [--quick]

Trees and edits come from ``bench/resync.py`` (``make_tree``, ``edit``), so the figures are
comparable with that benchmark.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resync import edit, make_tree  # bench/resync.py, beside this file

from activeupgrade.platform.volumes.manifest import Manifest
from activeupgrade.platform.volumes.resync import resync


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def case(base: Path, files: int, mib: int, fraction: float) -> dict[str, float]:
    """One tree of ``files`` files (``mib`` MiB), ``fraction`` of them changed on the
    source after a full sync: seconds for our resync and for rsync, and the full syncs."""
    shutil.rmtree(base, ignore_errors=True)
    src, ours, theirs, meta = base / "src", base / "ours", base / "theirs", base / "meta"
    meta.mkdir(parents=True)
    make_tree(src, files, mib << 20)
    _sh("sync")
    manifest = Manifest(meta)
    cp = _timed(lambda: _sh("cp", "-a", str(src), str(theirs)))
    full = _timed(lambda: resync(str(src), str(ours), manifest, src_is_a=True))
    _sh("sync")
    time.sleep(0.2)  # out of the filesystem clock's granularity window of the last copies
    changed = edit(src, fraction, seed=11)
    rs = _timed(lambda: _sh("rsync", "-a", "--delete", f"{src}/", f"{theirs}/"))
    inc = _timed(lambda: resync(str(src), str(ours), manifest, src_is_a=True))
    shutil.rmtree(base, ignore_errors=True)
    return {"cp": cp, "full": full, "rsync": rs, "ours": inc, "changed": changed}


def measure(base: Path, quick: bool = False) -> list[dict[str, Any]]:
    """Rows for bench/run.py's table."""
    rows: list[dict[str, Any]] = []
    n_frac, mib_frac = (2_000, 20) if quick else (10_000, 100)
    for fraction in (0.01, 0.10, 1.0):
        r = case(base / "fraction", n_frac, mib_frac, fraction)
        rows.append({
            "figure": f"resync, {fraction:.0%} of {n_frac} files changed", "unit": "s",
            "ours": r["ours"], "baseline": r["rsync"], "baseline_name": "rsync -a --delete",
            "note": f"{int(r['changed'])} files edited, {mib_frac} MiB tree",
        })
    for files in ((2_000, 20_000) if quick else (10_000, 100_000)):
        mib = max(1, files * 4 // 1024)  # 4 KiB per file on average
        r = case(base / "files", files, mib, 0.01)
        rows.append({
            "figure": f"full sync, {files} files", "unit": "s", "ours": r["full"],
            "baseline": r["cp"], "baseline_name": "cp -a", "note": f"{mib} MiB",
        })
        rows.append({
            "figure": f"resync, 1% of {files} files changed", "unit": "s", "ours": r["ours"],
            "baseline": r["rsync"], "baseline_name": "rsync -a --delete",
            "note": f"{int(r['changed'])} files edited",
        })
    shutil.rmtree(base, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/var/tmp/au-bench-growth")
    ap.add_argument("--quick", action="store_true", help="small trees (a smoke run)")
    args = ap.parse_args()
    for row in measure(Path(args.dir), args.quick):
        print(f"{row['figure']:<40} ours {row['ours']:8.3f}s  {row['baseline_name']} "
              f"{row['baseline']:8.3f}s  ratio {row['ours'] / row['baseline']:.2f}  "
              f"({row['note']})")


if __name__ == "__main__":
    main()
