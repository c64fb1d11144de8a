"""Adoption benchmark, through the CLI: `au volume adopt` of a tree (the original stays in
place as replica A, B is one copy) against the obvious baseline, one `cp -a
--reflink=auto` of the same tree; `au volume release` against `rm -r` of that copy. Also the
disk the replicas use against the tree's size, and the entries the tree has.

    .venv/bin/python bench/adopt.py [--dir /var/tmp/au-bench-adopt] [--files N] [--size-mib M]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resync import make_tree


def _timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def _du(path: Path) -> int:
    out = subprocess.run(["du", "-sx", "--block-size=1", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[0])


def measure(base: Path, files: int, size_mib: int) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise RuntimeError("adoption with bind mounts needs root")
    shutil.rmtree(base, ignore_errors=True)
    tree, home, copy = base / "srv" / "tree", base / "home", base / "copy"
    tree.mkdir(parents=True)
    make_tree(tree, files, size_mib << 20)
    subprocess.run(["sync"], check=True)
    env = {**os.environ, "AU_HOME": str(home)}
    au = [sys.executable, "-m", "activeupgrade"]
    subprocess.run([*au, "init"], check=True, env=env, stdout=subprocess.DEVNULL)
    try:
        cp = _timed(["cp", "-a", "--reflink=auto", str(tree), str(copy)])
        rm = _timed(["rm", "-r", str(copy)])
        adopt = _timed([*au, "volume", "adopt", str(tree), "--role", "data"], env)
        replicas = home / "replicas"
        b = next(replicas.iterdir()) / "b"
        used = _du(b)
        release = _timed([*au, "volume", "release", str(tree)], env)
    finally:
        subprocess.run([*au, "daemon", "--stop"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    tree_size = _du(tree)
    shutil.rmtree(base, ignore_errors=True)
    return {"files": files, "size_mib": size_mib, "adopt": adopt, "cp": cp,
            "release": release, "rm": rm, "b_bytes": used, "tree_bytes": tree_size}


def rows(quick: bool, base: Path) -> list[dict[str, Any]]:
    """Rows for bench/run.py's table."""
    files, mib = (2_000, 20) if quick else (20_000, 1024)
    r = measure(base, files, mib)
    return [
        {"figure": f"adopt {files} files, {mib} MiB (CLI)", "unit": "s", "ours": r["adopt"],
         "baseline": r["cp"], "baseline_name": "cp -a --reflink=auto",
         "note": "original kept in place as replica A, B one copy"},
        {"figure": "release (CLI)", "unit": "s", "ours": r["release"], "baseline": r["rm"],
         "baseline_name": "rm -r of the copy", "note": "replica A stays as the directory"},
        {"figure": "disk used by the replicas", "unit": "", "ours": r["b_bytes"],
         "baseline": r["tree_bytes"], "baseline_name": "the tree itself",
         "note": "bytes (A is the original)"},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--dir", default="/var/tmp/au-bench-adopt")
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    r = measure(Path(args.dir), args.files, args.size_mib)
    print(f"tree: {r['files']} files, {r['size_mib']} MiB ({r['tree_bytes']} bytes on disk)")
    print(f"au volume adopt:      {r['adopt']:8.2f} s   cp -a --reflink=auto: "
          f"{r['cp']:8.2f} s   ratio {r['adopt'] / r['cp']:.2f}")
    print(f"au volume release:    {r['release']:8.2f} s   rm -r of the copy:    "
          f"{r['rm']:8.2f} s   ratio {r['release'] / max(r['rm'], 1e-6):.2f}")
    print(f"disk used by replicas: {r['b_bytes']} bytes (replica b; a is the original), "
          f"ratio to the tree {r['b_bytes'] / max(r['tree_bytes'], 1):.2f}")


if __name__ == "__main__":
    main()
