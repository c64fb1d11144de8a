"""A minimal Debian bookworm root, used as the daemon's chroot with the tool running inside.

- ``cached_root()``: built once by ``mmdebstrap`` from Debian's packages (python3, apt,
  dpkg, systemd, iproute2, nginx 1.22.1-9+deb12u9 from bookworm) and kept under
  ``/var/cache/activeupgrade-tests/side-roots/<recipe hash>`` (a lock keeps two test runs
  from building it at once);
- ``update_debs()``: the newer nginx (1.22.1-9+deb12u11, bookworm-security) downloaded once
  with ``apt-get download`` into the same cache;
- ``Chroot``: a copy of the root for one test (a plain folder, not a mount point: the
  hard case for building the Upgrade Side) in an overlay of the cached one, with /proc
  and /dev mounted and this worktree
  and its Python packages bound read-only at their own paths; ``au`` runs the tool inside
  with ``chroot``; ``close`` ends its daemon and unmounts everything.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import cannot_run

CACHE = Path("/var/cache/activeupgrade-tests/side-roots")
PACKAGES = ("python3", "iproute2", "apt-utils", "nginx", "systemd", "procps", "passwd")
MIRROR = "deb http://deb.debian.org/debian bookworm main"
OLD, NEW = "1.22.1-9+deb12u9", "1.22.1-9+deb12u11"
REPO = "/srv/updates"
"""The local apt repository inside the root holding the newer nginx."""
SOURCE = Path(__file__).resolve().parents[2]


def _recipe() -> str:
    return hashlib.sha1(repr((PACKAGES, MIRROR, 1)).encode()).hexdigest()[:16]


def _locked(name: str) -> int:
    CACHE.mkdir(parents=True, exist_ok=True)
    fd = os.open(CACHE / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def cached_root() -> Path:
    """The folder holding the built root as ``root/`` (a read-only template)."""
    if shutil.which("mmdebstrap") is None:
        cannot_run("needs mmdebstrap (apt-get install mmdebstrap)")
    key = _recipe()
    done = CACHE / key
    fd = _locked(key)
    try:
        if not (done / "root" / "usr" / "bin" / "python3").exists():
            partial = CACHE / f"{key}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            run = subprocess.run(
                ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
                 "bookworm", str(partial / "root"), MIRROR],
                capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
            if run.returncode != 0:
                cannot_run(f"mmdebstrap failed: {run.stderr[-2000:]}")
            shutil.rmtree(done, ignore_errors=True)
            os.rename(partial, done)
    finally:
        os.close(fd)
    return done


def update_debs() -> Path:
    """The newer nginx and nginx-common .debs (Debian's own)."""
    folder = CACHE / f"nginx-{NEW}"
    fd = _locked(f"nginx-{NEW}")
    try:
        if len(list(folder.glob("*.deb"))) < 2:
            folder.mkdir(parents=True, exist_ok=True)
            run = subprocess.run(["apt-get", "download", f"nginx={NEW}", f"nginx-common={NEW}"],
                                 cwd=folder, capture_output=True, text=True, timeout=600,
                                 stdin=subprocess.DEVNULL)
            if run.returncode != 0:
                cannot_run(f"apt-get download nginx={NEW} failed: {run.stderr[-1000:]}")
    finally:
        os.close(fd)
    return folder


def _site_packages() -> list[str]:
    return sorted({p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)})


class Chroot:
    """A copy of the Debian root with the tool inside, for one test."""

    def __init__(self, where: Path, *, with_updates: bool = True) -> None:
        # The cached root seen through an overlay of its own (a copy per test at no cost);
        # the chroot is the folder root/ in it: a plain folder, not a mount point.
        self.merged = where / "merged"
        for name in ("merged", "upper", "work"):
            (where / name).mkdir(parents=True)
        subprocess.run(["mount", "-t", "overlay", "au-test-root", "-o",
                        f"lowerdir={cached_root()},upperdir={where / 'upper'},"
                        f"workdir={where / 'work'},redirect_dir=on", str(self.merged)],
                       check=True, timeout=60)
        self.root = self.merged / "root"
        self._mount(["-t", "proc", "proc"], "/proc")
        self._mount(["--rbind"], "/dev")
        for path in (str(SOURCE), *_site_packages()):
            self._mount(["--bind", "-o", "ro"], path)
        self.pythonpath = ":".join([str(SOURCE / "src"), *_site_packages()])
        if with_updates:
            repo = self.root / REPO.lstrip("/")
            repo.mkdir(parents=True)
            for deb in update_debs().glob("*.deb"):
                shutil.copy(deb, repo)
            index = subprocess.run(["apt-ftparchive", "packages", "."], cwd=repo,
                                   capture_output=True, check=True, timeout=120)
            (repo / "Packages").write_bytes(index.stdout)
            (self.root / "etc/apt/sources.list").write_text(
                f"deb [trusted=yes] file:{REPO} ./\n")

    def _mount(self, args: list[str], path: str) -> None:
        """``mount ARGS [path] ROOT/path``: binds take ``path`` as their source."""
        target = self.root / path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        bind = "--bind" in args or "--rbind" in args
        subprocess.run(["mount", *args, *([path] if bind else []), str(target)], check=True,
                       timeout=60)
        if "ro" in args:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True,
                           timeout=60)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG": "C.UTF-8", "HOME": "/root", "PYTHONPATH": self.pythonpath,
                **(extra or {})}

    def run(self, *argv: str, timeout: float = 300, check: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the chroot (the daemon's root)."""
        done = subprocess.run(["chroot", str(self.root), *argv], capture_output=True,
                              text=True, timeout=timeout, env=self.env(env),
                              stdin=subprocess.DEVNULL)
        if check:
            assert done.returncode == 0, (argv, done.stdout, done.stderr)
        return done

    def au(self, *args: str, timeout: float = 300, check: bool = True
           ) -> subprocess.CompletedProcess[str]:
        """``au ARGS`` inside the chroot (its default instance, /var/lib/activeupgrade)."""
        return self.run("/usr/bin/python3", "-m", "activeupgrade", *args, timeout=timeout,
                        check=check)

    def close(self) -> None:
        import json

        self.au("abort", "--yes", check=False, timeout=120)
        self.au("finish", check=False, timeout=120)
        # Applications and their keepers outlive the daemon by design: end them, or they
        # stay behind in the host's namespaces after the chroot is gone.
        services = self.au("service", "list", "--json", check=False)
        if services.returncode == 0 and services.stdout.strip().startswith("["):
            for svc in json.loads(services.stdout):
                self.au("service", "stop", str(svc["name"]), "--release", check=False)
        listed = self.au("volume", "list", "--json", check=False)
        if listed.returncode == 0 and listed.stdout.strip().startswith("["):
            for vol in json.loads(listed.stdout):
                self.au("volume", "release", vol["name"], check=False)
        self.au("daemon", "--stop", check=False)
        prefix = os.path.realpath(self.merged)
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            points = [line.split()[4] for line in fh]
        for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")),
                            reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
