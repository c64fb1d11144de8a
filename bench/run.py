"""Run every benchmark and print one table: each figure for us and for its baseline,
measured side by side in the same run, with the ratio ours/baseline.

    .venv/bin/python bench/run.py [--quick] [--only merge,split,side,resync,engine,growth]
                                  [--dir /var/tmp/au-bench] [--json FILE]

Sections (see bench/README.md):

- merge: our held-socket switchover vs a naive stop/start under the same load
  (``bench/merge.py``);
- split: split time of an in-sync volume (``bench/split.py``, when present);
- side: building and entering the Upgrade Side, listing its writes (``bench/side.py``);
- resync: the headline tree (≥ 1 GiB, ≥ 20,000 files, 1 % changed on each side) — our full
  sync vs ``cp -a`` and our resync vs ``rsync -a --delete`` (``bench/resync.py``);
- engine: a whole empty session in-process and through the CLI (``bench/engine_overhead.py``);
- config: loading a nested configuration vs the bare TOML parse (``bench/config_load.py``);
- growth: resync for 1 %, 10 %, 100 % changed and for 10k, 100k files (``bench/growth.py``).

A section that fails prints its error in the table's notes and makes the exit status 1;
the other sections still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

Row = dict[str, Any]


def merge_rows(quick: bool, base: Path) -> list[Row]:
    merge = importlib.import_module("merge")
    rounds, threads, delay, settle = (2, 8, 0.3, 0.5) if quick else (5, 16, 0.3, 1.0)
    ours = merge.summarise(merge.run(True, rounds, threads, delay, settle))
    naive = merge.summarise(merge.run(False, rounds, threads, delay, settle))
    note = f"{rounds} switchovers, {threads} clients, start-up {delay}s"
    rows: list[Row] = [
        {"figure": "merge: failed requests", "unit": "", "ours": ours["failed"],
         "baseline": naive["failed"], "baseline_name": "naive stop/start",
         "note": f"{int(ours['sent'])} vs {int(naive['sent'])} sent; {note}"},
        {"figure": "merge: longest client wait", "unit": "s", "ours": ours["longest_wait_s"],
         "baseline": naive["longest_wait_s"], "baseline_name": "naive stop/start", "note": ""},
        {"figure": "merge: p99 latency", "unit": "s", "ours": ours["p99_s"],
         "baseline": naive["p99_s"], "baseline_name": "naive stop/start", "note": ""},
        {"figure": "merge: client-side gap", "unit": "s", "ours": ours["client_gap_s"],
         "baseline": naive["client_gap_s"], "baseline_name": "naive stop/start", "note": ""},
    ]
    return rows


def daemons_rows(quick: bool, base: Path) -> list[Row]:
    daemons = importlib.import_module("daemons")
    rows: list[Row] = daemons.rows(quick)
    return rows


def split_rows(quick: bool, base: Path) -> list[Row]:
    if not (HERE / "split.py").exists():
        raise RuntimeError("bench/split.py is not present in this tree")
    split = importlib.import_module("split")
    if hasattr(split, "rows"):
        rows: list[Row] = split.rows(quick)
        return rows
    args = ["--dir", str(base / "split")]
    if quick:
        args += ["--files", "2000", "--size-mib", "50"]
    return parsed_rows("split.py", args, SPLIT_PATTERNS)


SPLIT_PATTERNS = [
    (re.compile(r"split \(in sync\):\s+([\d.]+)s"), "split, in-sync volume", "goal"),
]
SPLIT_GOAL_S = 1.0
"""Issue 3: split under 1 s when the mirror is in sync (the baseline column shows the goal)."""


def side_rows(quick: bool, base: Path) -> list[Row]:
    side = importlib.import_module("side")
    rows: list[Row] = side.rows(quick)
    return rows


def parsed_rows(script: str, args: list[str],
                patterns: list[tuple[re.Pattern[str], str, str]]) -> list[Row]:
    """Run a benchmark script that only prints, and read its figures from its output."""
    done = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{script} exited {done.returncode}: "
                           f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    rows: list[Row] = []
    for pattern, figure, baseline_name in patterns:
        m = pattern.search(done.stdout)
        if m is None:
            rows.append({"figure": figure, "unit": "s", "ours": None, "baseline": None,
                         "baseline_name": baseline_name,
                         "note": f"not found in {script}'s output"})
            continue
        numbers = [float(g) for g in m.groups()]
        if len(numbers) == 1:  # a figure with a goal rather than a measured baseline
            rows.append({"figure": figure, "unit": "s", "ours": numbers[0],
                         "baseline": SPLIT_GOAL_S, "baseline_name": baseline_name,
                         "note": "baseline column: the goal"})
            continue
        if len(numbers) == 3:  # (files changed, baseline, ours)
            changed, theirs, ours = numbers
            note = f"{int(changed)} files changed on each side"
        else:
            theirs, ours = numbers
            note = ""
        rows.append({"figure": figure, "unit": "s", "ours": ours, "baseline": theirs,
                     "baseline_name": baseline_name, "note": note})
    first = done.stdout.splitlines()[:1]
    if first and rows:
        rows[0]["note"] = (rows[0]["note"] + "; " if rows[0]["note"] else "") + first[0]
    return rows


def resync_rows(quick: bool, base: Path) -> list[Row]:
    resync = importlib.import_module("resync")
    rows: list[Row] = resync.rows(quick, base / "resync")
    return rows


def adopt_rows(quick: bool, base: Path) -> list[Row]:
    rows: list[Row] = importlib.import_module("adopt").rows(quick, base / "adopt")
    return rows


def engine_rows(quick: bool, base: Path) -> list[Row]:
    rows: list[Row] = importlib.import_module("engine_overhead").measure(1 if quick else 3)
    return rows


def growth_rows(quick: bool, base: Path) -> list[Row]:
    rows: list[Row] = importlib.import_module("growth").measure(base / "growth", quick)
    return rows


def config_rows(quick: bool, base: Path) -> list[Row]:
    """bench/config_load.py's measurement: nested load vs the bare TOML parse."""
    import tomllib

    cl = importlib.import_module("config_load")
    top, child = cl.EXAMPLES / "shop.toml", cl.EXAMPLES / "shop-db.toml"

    def bare() -> None:
        tomllib.loads(top.read_text())
        tomllib.loads(child.read_text())

    rounds = 200 if quick else cl.ROUNDS
    return [{"figure": "config: load parent + child", "unit": "s",
             "ours": cl.per_call(lambda: cl.load_file(top), rounds),
             "baseline": cl.per_call(bare, rounds), "baseline_name": "tomllib parse",
             "note": "nesting, schema, lines, provenance"}]


SECTIONS: dict[str, Callable[[bool, Path], list[Row]]] = {
    "merge": merge_rows,
    "daemons": daemons_rows,
    "split": split_rows,
    "side": side_rows,
    "resync": resync_rows,
    "engine": engine_rows,
    "config": config_rows,
    "growth": growth_rows,
    "adopt": adopt_rows,
}


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        if value < 0.001:
            return f"{value * 1e6:.0f} µs"
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"
    return f"{value:g}"


def ratio(row: Row) -> str:
    ours, theirs = row.get("ours"), row.get("baseline")
    if ours is None or theirs is None:
        return "-"
    if theirs == 0:
        return "=" if ours == 0 else "inf"
    return f"{ours / theirs:.2f}"


def render(rows: list[Row]) -> str:
    headers = ["figure", "ours", "baseline", "value", "ours/base", "notes"]
    table = [[r["figure"], fmt(r.get("ours"), r.get("unit", "")),
              r.get("baseline_name") or "-", fmt(r.get("baseline"), r.get("unit", "")),
              ratio(r), r.get("note", "")] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    widths[-1] = len(headers[-1])
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for t in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip())
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument("--dir", default="/var/tmp/au-bench", help="scratch folder for trees")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()
    base = Path(args.dir)
    rows: list[Row] = []
    failed = False
    for name in [s.strip() for s in args.only.split(",") if s.strip()]:
        if name not in SECTIONS:
            ap.error(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
        print(f"== {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            rows += SECTIONS[name](args.quick, base)
        except Exception as exc:  # a section's failure is reported, the others still run
            failed = True
            traceback.print_exc(file=sys.stderr)
            rows.append({"figure": f"{name}: FAILED", "unit": "", "ours": None,
                         "baseline": None, "baseline_name": "", "note": str(exc)[:200]})
        print(f"   {name} done in {time.monotonic() - started:.1f}s", file=sys.stderr,
              flush=True)
    print(render(rows))
    print("\nratio = ours / baseline (below 1: we are faster or fail less).")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
