"""The build cache of test hosts: Debian roots, local apt repositories, wheelhouses.

Everything lives under ``cache_dir()`` (``/var/cache/activeupgrade-tests``, or
``$AU_TEST_HOST_CACHE``)::

    xfs.img, xfs/             an XFS filesystem with reflinks (a sparse image, loop-mounted
                              at xfs/ on first use and left mounted: part of the cache)
    xfs/roots/KEY/root/       a Debian root built by mmdebstrap from a Recipe (KEY = its hash)
    xfs/roots/KEY/build.json  the recipe, the versions installed, how long the build took
    xfs/roots/KEY/venv-W/     /opt/activeupgrade with the run-time dependencies (W: the
                              wheelhouse's key), the project itself not installed
    xfs/hosts/NAME/           the hosts' copies of roots (cp --reflink: shared extents)
    wheels/KEY/               the project's run-time dependencies as wheels (KEY: their hash)
    project/KEY/*.whl         the project's own wheel (KEY: a hash of src/ and pyproject.toml)

Roots and copies sit on the XFS filesystem so that a copy shares the root's data (a copy
costs its metadata only, about 12,000 inodes, and almost no disk); where it cannot be
mounted (no loop device, ``AU_TEST_HOST_REFLINK=0``) roots are under ``roots/`` and each host
copies its root in full into its own work folder.

An entry is built under a temporary name and renamed into place when complete, under an
exclusive ``flock`` of ``KEY.lock``: concurrent test runs wait for one build, then share
it; an interrupted build leaves no entry. A miss costs one ``mmdebstrap`` (about 25 s for
the base recipe on a 2-core machine with a near mirror), a hit a ``stat``.

The local apt repository of a recipe's ``updates`` is part of its root
(``/srv/au-updates``, flat, indexed by ``dpkg-scanpackages``, listed in
``/etc/apt/sources.list.d/au-updates.list`` as ``[trusted=yes]``, with apt's ``copy:``
method, so that ``--download-only`` puts the .debs into ``/var/cache/apt/archives`` as from
a mirror, where ``file:`` would use them in place); the Debian sources the
root was built from are kept as ``/etc/apt/sources.list.d/debian.list.disabled`` (apt
ignores the name), so that ``apt-get update`` inside a host with no network reads only the
local repository and succeeds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from activeupgrade import proc
from activeupgrade.errors import ProcessError
from tests.host.recipe import MIRRORS, SUITE, Recipe

CACHE_ENV = "AU_TEST_HOST_CACHE"
REFLINK_ENV = "AU_TEST_HOST_REFLINK"
IMAGE_BYTES = 64 << 30
DEFAULT_CACHE = Path("/var/cache/activeupgrade-tests")
PROJECT = Path(__file__).resolve().parents[2]
"""The project's top folder (pyproject.toml)."""
UPDATES_IN_HOST = "/srv/au-updates"
WHEELS_IN_HOST = "/var/cache/au-wheelhouse"
VENV = "/opt/activeupgrade"
"""Where the tool is installed in a host (a venv of the host's Python)."""
BUILD_TIMEOUT = 1800.0


def cache_dir() -> Path:
    """Where built roots and wheelhouses are kept between runs."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _apt_env() -> dict[str, str]:
    return proc.base_env({"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"})


def reflink_area() -> Path | None:
    """The mounted XFS filesystem of the cache (mounted first when needed), or None when
    it cannot be had here (then copies are full copies)."""
    if os.environ.get(REFLINK_ENV, "1") == "0":
        return None
    base = cache_dir()
    mnt, img = base / "xfs", base / "xfs.img"
    if os.path.ismount(mnt):
        return mnt
    with _locked(base / "xfs.lock"):
        if os.path.ismount(mnt):
            return mnt
        try:
            if not img.exists():
                fresh = img.with_suffix(".partial")
                with open(fresh, "wb") as fh:
                    fh.truncate(IMAGE_BYTES)  # sparse: grows with use, shrinks (discard)
                proc.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(fresh)], timeout=300)
                os.rename(fresh, img)
            mnt.mkdir(exist_ok=True)
            proc.run(["mount", "-o", "loop,discard,noatime", str(img), str(mnt)], timeout=60)
        except ProcessError:
            return None
    return mnt


def root_entry(recipe: Recipe) -> Path:
    """The cache entry of ``recipe`` (it may not exist yet)."""
    return (reflink_area() or cache_dir()) / "roots" / recipe.key()


def ensure_root(recipe: Recipe) -> Path:
    """The cached root of ``recipe``, built first when missing. Returns ``.../root``."""
    entry = root_entry(recipe)
    if (entry / "build.json").exists():
        return entry / "root"
    with _locked(entry.with_suffix(".lock")):
        if (entry / "build.json").exists():  # another run built it while we waited
            return entry / "root"
        work = Path(tempfile.mkdtemp(prefix=f"{entry.name}.", suffix=".partial",
                                     dir=entry.parent))
        try:
            info = _build(recipe, work)
            (work / "build.json").write_text(json.dumps(info, indent=1) + "\n")
            os.rename(work, entry)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return entry / "root"


def build_info(recipe: Recipe) -> dict[str, object]:
    """What ``build.json`` of a built recipe says (versions, build time)."""
    data: dict[str, object] = json.loads((root_entry(recipe) / "build.json").read_text())
    return data


def _build(recipe: Recipe, work: Path) -> dict[str, object]:
    root = work / "root"
    began = time.monotonic()
    proc.run(["mmdebstrap", "--variant=apt", "--quiet",
              f"--include={','.join(recipe.packages())}", SUITE, str(root), *MIRRORS],
             env=_apt_env(), timeout=BUILD_TIMEOUT)
    built = time.monotonic() - began
    _offline_apt(root)
    if recipe.updates:
        _updates_repository(recipe, root / UPDATES_IN_HOST.lstrip("/"))
    # systemd creates a machine id at the first boot of each copy (empty = "uninitialised").
    (root / "etc/machine-id").write_text("")
    versions = proc.run(["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W",
                         "-f", "${Package}\t${Version}\n"], timeout=60).stdout
    return {"recipe": recipe.name, "key": recipe.key(), "packages": recipe.packages(),
            "updates": list(recipe.updates), "mmdebstrap_seconds": round(built, 1),
            "seconds": round(time.monotonic() - began, 1), "built_at": time.time(),
            "versions": dict(line.split("\t", 1) for line in versions.splitlines() if line)}


def _offline_apt(root: Path) -> None:
    apt = root / "etc/apt"
    listed = apt / "sources.list"
    if listed.exists():
        os.replace(listed, apt / "sources.list.d/debian.list.disabled")
    (apt / "sources.list.d/au-updates.list").write_text(
        f"# The test host's local repository of updates (no network needed).\n"
        f"deb [trusted=yes] copy:{UPDATES_IN_HOST} ./\n")
    repo = root / UPDATES_IN_HOST.lstrip("/")
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "Packages").write_text("")


def _updates_repository(recipe: Recipe, repo: Path) -> None:
    """The newest .debs of ``recipe.updates`` (``apt-get download`` on this machine) and
    their index, readable by apt's sandbox user."""
    download = ["apt-get", "download", "-q", *recipe.updates]
    if proc.run(download, cwd=repo, env=_apt_env(), timeout=BUILD_TIMEOUT,
                check=False).returncode != 0:
        # This machine's package lists may be missing or older than what Debian serves.
        proc.run(["apt-get", "update", "-q"], env=_apt_env(), timeout=BUILD_TIMEOUT)
        proc.run(download, cwd=repo, env=_apt_env(), timeout=BUILD_TIMEOUT)
    index = proc.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, timeout=300)
    (repo / "Packages").write_text(index.stdout)
    for p in (repo, *repo.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)


# -- the project, as wheels --------------------------------------------------------------------
def _dependencies() -> list[str]:
    import tomllib

    doc = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    return list(doc["project"]["dependencies"])


def _pip(args: list[str], *, timeout: float = BUILD_TIMEOUT) -> None:
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    proc.run([sys.executable, "-m", "pip", *args], env=proc.base_env(env), timeout=timeout)


def ensure_wheelhouse() -> Path:
    """Wheels of the project's run-time dependencies (none of its test tools), built from
    the package index pip uses here, for this Python version (the test hosts' is the same
    minor version: Debian bookworm's 3.11)."""
    deps = _dependencies()
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    key = hashlib.sha256(json.dumps([deps, tag]).encode()).hexdigest()[:16]
    entry = cache_dir() / "wheels" / key
    if (entry / "done").exists():
        return entry
    with _locked(entry.with_suffix(".lock")):
        if not (entry / "done").exists():
            work = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".partial", dir=entry.parent))
            try:
                _pip(["wheel", "-q", "--wheel-dir", str(work), *deps])
                (work / "done").write_text(json.dumps(deps) + "\n")
                os.rename(work, entry)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return entry


def _source_hash() -> str:
    h = hashlib.sha256()
    files = [PROJECT / "pyproject.toml", PROJECT / "README.md",
             *sorted((PROJECT / "src").rglob("*"))]
    for f in files:
        if f.is_file() and "__pycache__" not in f.parts and ".egg-info" not in str(f):
            h.update(str(f.relative_to(PROJECT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def ensure_project_wheel() -> Path:
    """The project's own wheel for the current source tree (cached by its content)."""
    entry = cache_dir() / "project" / _source_hash()
    wheels = sorted(entry.glob("activeupgrade-*.whl"))
    if wheels:
        return wheels[0]
    with _locked(entry.with_suffix(".lock")):
        wheels = sorted(entry.glob("activeupgrade-*.whl"))
        if not wheels:
            work = Path(tempfile.mkdtemp(suffix=".partial", dir=entry.parent))
            try:
                # Built from a copy: a build in place leaves build/ and *.egg-info behind.
                src = work / "src"
                shutil.copytree(PROJECT, src, ignore=shutil.ignore_patterns(
                    ".git", ".venv", "__pycache__", "*.egg-info", "build", "tests", "bench",
                    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"))
                _pip(["wheel", "-q", "--no-deps", "--wheel-dir", str(work / "out"), str(src)])
                os.rename(work / "out", entry)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            wheels = sorted(entry.glob("activeupgrade-*.whl"))
    return wheels[0]


def ensure_venv(recipe: Recipe) -> Path:
    """``/opt/activeupgrade`` for hosts of ``recipe``: a venv of the host's own Python with
    the wheelhouse installed (everything but the project), made once in a throw-away copy
    of the root (``systemd-nspawn`` without booting, no network) and cached beside the
    root. A host copies it in and installs only the project's wheel."""
    house = ensure_wheelhouse()
    entry = root_entry(recipe) / f"venv-{house.name}"
    if (entry / "done").exists():
        return entry / "activeupgrade"
    root = ensure_root(recipe)
    with _locked(entry.with_suffix(".lock")):
        if not (entry / "done").exists():
            work = Path(tempfile.mkdtemp(suffix=".partial", dir=entry.parent))
            try:
                scratch = work / "root"
                proc.run(["cp", "-a", "--reflink=auto", "--no-target-directory", str(root),
                          str(scratch)], timeout=1800)
                nspawn = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
                          "--private-network", "--pipe", "-D", str(scratch),
                          f"--bind-ro={house}:{WHEELS_IN_HOST}", "--setenv=HOME=/root",
                          "--setenv=PIP_DISABLE_PIP_VERSION_CHECK=1", "--"]
                proc.run([*nspawn, "python3", "-m", "venv", VENV], timeout=600)
                proc.run([*nspawn, f"{VENV}/bin/pip", "install", "-q", "--no-index",
                          "--find-links", WHEELS_IN_HOST, *_dependencies()], timeout=1800)
                out = work / "out"
                out.mkdir()
                os.rename(scratch / VENV.lstrip("/"), out / "activeupgrade")
                (out / "done").write_text(house.name + "\n")
                os.rename(out, entry)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return entry / "activeupgrade"
