"""Packages staged on the Production Side for the Upgrade Side, which has no network.

``au packages stage [NAMES…]`` runs apt on the Production Side (the daemon's root) to
download what ``apt-get upgrade`` (or ``apt-get install NAMES``) would install, without
installing anything and without touching the host's own apt state: the lists go to
``AU_HOME/packages/lists`` (copied from the host's, or fetched anew with ``--update``) and
the packages to ``AU_HOME/packages/archives``. The Upgrade Side shows these two folders as
apt's ``/var/lib/apt/lists`` and ``/var/cache/apt/archives`` (copy-on-write, ``side/view.py``),
so that ``apt-get install``, ``apt-get upgrade`` and ``dpkg -i`` run there unmodified and
offline. What was staged is recorded in ``AU_HOME/packages/stage.json``; the readiness check
AU-C021 says when nothing is.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from activeupgrade import proc
from activeupgrade.durable import write_durably
from activeupgrade.errors import ProcessError, StagingError, UsageError
from activeupgrade.instance import Instance

HOST_LISTS = Path("/var/lib/apt/lists")
STAGE_TIMEOUT = 3600.0
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789+-.:=~/")
"""What a package argument may contain: a name, ``name=version`` or ``name/release``."""


@dataclass
class Stage:
    """What is staged for the Upgrade Side."""

    names: list[str] = field(default_factory=list)
    """The packages asked for ([] : what ``apt-get upgrade`` would install)."""
    packages: list[dict[str, Any]] = field(default_factory=list)
    """The .deb files staged: file, bytes."""
    lists: str = ""
    """Where apt's lists came from."""
    at: float = 0.0
    """When it was staged (epoch seconds)."""

    @property
    def staged(self) -> bool:
        return bool(self.packages)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bytes"] = sum(int(p["bytes"]) for p in self.packages)
        return d


def stage_folder(instance: Instance) -> Path:
    """``AU_HOME/packages``: ``archives/`` (the .deb files) and ``lists/`` (apt's lists)."""
    return instance.home / "packages"


def current(instance: Instance) -> Stage:
    """What is staged now (an empty Stage when nothing is)."""
    try:
        data = json.loads((stage_folder(instance) / "stage.json").read_text())
    except (FileNotFoundError, ValueError):
        return Stage()
    return Stage(**{k: data[k] for k in ("names", "packages", "lists", "at") if k in data})


def _apt() -> str:
    apt = proc.which("apt-get")
    if apt is None:
        raise StagingError("apt-get is not installed here: staging needs a Debian-based host",
                           hint="Put what the Upgrade Side needs on a system volume instead, "
                           "and list it in [upgrade_side] packages.")
    return apt


def _options(folder: Path) -> list[str]:
    return ["-o", f"Dir::State::Lists={folder / 'lists'}/",
            "-o", f"Dir::Cache::Archives={folder / 'archives'}/",
            # The folder is root's alone: apt's _apt user could not write it.
            "-o", "APT::Sandbox::User=root", "-q"]


def _copy_lists(target: Path) -> str:
    if target.exists():
        shutil.rmtree(target)
    (target / "partial").mkdir(parents=True)
    if HOST_LISTS.is_dir():
        for entry in HOST_LISTS.iterdir():
            if entry.is_file() and entry.name != "lock":
                shutil.copy2(entry, target / entry.name)
    return f"copied from {HOST_LISTS}"


def check_names(names: list[str]) -> list[str]:
    for name in names:
        if not name or name.startswith("-") or not set(name.lower()) <= NAME_CHARS:
            raise UsageError(f"{name!r} is not a package name",
                             hint="Give package names (name, name=version or name/release).")
    return names


def stage(instance: Instance, names: list[str], *, update: bool = False) -> tuple[Stage, str]:
    """Download ``names`` (none: the upgrade) with their dependencies for the Upgrade
    Side; returns what is staged and apt's output."""
    apt = _apt()
    check_names(names)
    folder = stage_folder(instance)
    archives = folder / "archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    env = proc.base_env({"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"})
    output: list[str] = []
    if update:
        (folder / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        done = _run([apt, *_options(folder), "update"], env)
        output.append(done.stdout + done.stderr)
        origin = "fetched by apt-get update on the Production Side"
    else:
        origin = _copy_lists(folder / "lists")
    what = ["install", *names] if names else ["upgrade"]
    done = _run([apt, *_options(folder), "--download-only", "-y", *what], env)
    output.append(done.stdout + done.stderr)
    # A local repository (file:) is used in place by apt, never copied: copy what it
    # offers, so that what is staged does not depend on that folder staying as it is.
    uris = _run([apt, *_options(folder), "--print-uris", "-qq", "-y", *what], env)
    _copy_local(uris.stdout, archives)
    _resolve_links(folder / "lists")
    debs = sorted(p for p in archives.glob("*.deb") if p.is_file())
    result = Stage(names=list(names), lists=origin, at=time.time(),
                   packages=[{"file": p.name, "bytes": p.stat().st_size} for p in debs])
    write_durably(folder / "stage.json", json.dumps(result.to_dict(), indent=1).encode())
    return result, "".join(output)


def _copy_local(printed: str, archives: Path) -> None:
    """Copy the ``file:`` packages of ``apt-get --print-uris`` into ``archives``."""
    for line in printed.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith("'file:"):
            continue
        source = Path(urllib.parse.unquote(parts[0].strip("'")[len("file:"):]))
        target = archives / parts[1]
        if source.is_file() and not target.exists():
            shutil.copy2(source, target)


def _resolve_links(lists: Path) -> None:
    """apt links the lists of a local repository: keep copies instead."""
    for entry in lists.iterdir() if lists.is_dir() else []:
        if entry.is_symlink():
            real = entry.resolve()
            entry.unlink()
            if real.is_file():
                shutil.copy2(real, entry)


def _run(argv: list[str], env: dict[str, str]) -> proc.Completed:
    try:
        return proc.run(argv, env=env, timeout=STAGE_TIMEOUT)
    except ProcessError as exc:
        stderr = str(exc.details.get("stderr", "")).strip().splitlines()
        reason = next((ln for ln in reversed(stderr) if ln.startswith("E:")), exc.message)
        raise StagingError(f"staging failed: {reason}",
                           hint="Check the package names and the host's apt sources; "
                           "`au packages stage --update` fetches the lists first.",
                           details=exc.details) from exc


def clear(instance: Instance) -> None:
    """Forget what is staged (the Upgrade Side then has no package cache of ours)."""
    shutil.rmtree(stage_folder(instance), ignore_errors=True)
