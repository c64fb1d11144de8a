"""Loading a nested configuration (parent + child, schema, provenance) against the bare
TOML parse of the same two files, measured in the same run.

Run: .venv/bin/python bench/config_load.py
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

from activeupgrade.config.loader import load_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROUNDS = 2000


def per_call(fn: object, rounds: int = ROUNDS) -> float:
    assert callable(fn)
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds


def main() -> None:
    top, child = EXAMPLES / "shop.toml", EXAMPLES / "shop-db.toml"

    def baseline() -> None:
        tomllib.loads(top.read_text())
        tomllib.loads(child.read_text())

    baseline_s = per_call(baseline)
    load_s = per_call(lambda: load_file(top))
    print(f"tomllib parse of both files: {baseline_s * 1e6:8.1f} µs")
    print(f"load_file (nesting, schema, lines, provenance): {load_s * 1e6:8.1f} µs")
    print(f"ratio: {load_s / baseline_s:.2f}x the bare parse")


if __name__ == "__main__":
    main()
