"""The shop's installer: an ordinary package installer, stdlib only.

``python3 installer.py PACKAGE.tar.gz PREFIX`` installs a shop release into ``PREFIX``
(``/opt/shop`` on a real host): every file is written beside its target and renamed over it,
files of the previous release that the new one no longer ships are removed, and ``log/`` is
kept. Scripts whose first line is ``#!python`` get the interpreter running the installer, as
pip does. The operator runs it inside the Upgrade Side: ``au exec -- python3 installer.py ...``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

KEEP = ("log",)
"""Top-level entries of PREFIX that belong to the running site, not to the package."""
EXECUTABLE_DIRS = ("bin",)


def install(package: Path, prefix: Path) -> dict[str, object]:
    if not prefix.is_dir():
        raise SystemExit(f"installer: {prefix} is not a folder")
    staging = prefix / f".installing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        with tarfile.open(package) as tar:
            extract(tar, staging)
        shipped: list[str] = []
        for src in sorted(p for p in staging.rglob("*") if p.is_file()):
            rel = src.relative_to(staging)
            shipped.append(rel.as_posix())
            data = src.read_bytes()
            if data.startswith(b"#!python\n"):
                data = f"#!{sys.executable}\n".encode() + data[len(b"#!python\n"):]
            executable = rel.parts[0] in EXECUTABLE_DIRS or rel.name == "app.py"
            target = prefix / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.new")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o755 if executable else 0o644)
            os.replace(tmp, target)
            print(f"installed {rel}", flush=True)
        removed = remove_stale(prefix, set(shipped), staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    release = json.loads((prefix / "release.json").read_text())
    return {"version": release["version"], "files": len(shipped), "removed": removed}


def extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract regular files and folders only, never outside ``dest``."""
    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 checks this itself
        tar.extractall(dest, filter="data")
        return
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise SystemExit(f"installer: refusing package member {member.name!r}")
    tar.extractall(dest)


def remove_stale(prefix: Path, shipped: set[str], staging: Path) -> list[str]:
    removed: list[str] = []
    for path in sorted(prefix.rglob("*"), reverse=True):
        rel = path.relative_to(prefix)
        if rel.parts[0] in KEEP or path == staging or staging in path.parents:
            continue
        if path.is_file() and rel.as_posix() not in shipped:
            path.unlink()
            removed.append(rel.as_posix())
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: installer.py PACKAGE.tar.gz PREFIX", file=sys.stderr)
        return 2
    result = install(Path(argv[0]), Path(argv[1]))
    print(json.dumps({"installed": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
