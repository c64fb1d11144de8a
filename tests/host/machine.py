"""One booted Debian test host: a writable copy of a cached root under ``systemd-nspawn``.

Life of a host (see ``tests/host/__init__.py`` for the whole API)::

    host = Host.create(NGINX, workdir)     # copy of the cached root (cp -a, reflink if it can)
    host.boot()                            # nspawn -b; waits for `is-system-running` (running)
    host.run(["systemctl", "is-active", "nginx"])   # nsenter into all its namespaces
    host.reboot()                          # `systemctl reboot` inside, nspawn exits 133, boot
    host.power_cut(); host.boot()          # SIGKILL of its PID 1 and of nspawn, boot again
    host.destroy()                         # poweroff (or kill), checks, copy removed

``systemd-nspawn`` runs with ``--register=no --keep-unit`` (no systemd on the build
machine to register with), its network from ``network.py`` (``--private-network`` by
default), the system calls ``fanotify_init``, ``fanotify_mark`` and ``open_by_handle_at``
allowed (nspawn's filter refuses them with EPERM by default), and optionally the machine's
loop devices bound in. Its console goes to ``WORKDIR/console.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from activeupgrade import proc
from activeupgrade.errors import ProcessError
from tests.host import cgroup
from tests.host.cache import (
    VENV,
    WHEELS_IN_HOST,
    ensure_project_wheel,
    ensure_root,
    ensure_venv,
    ensure_wheelhouse,
    reflink_area,
)
from tests.host.network import Network, PrivateNetwork
from tests.host.recipe import BASE, Recipe

REBOOT_EXIT = 133
"""nspawn's exit status when the container asked for a reboot."""
ALLOWED_SYSCALLS = ("fanotify_init", "fanotify_mark", "open_by_handle_at")
"""Allowed on top of nspawn's default filter: fanotify (change tracking of whole
filesystems) and handle-based opens, which a root process of a real host may use."""
INOTIFY_INSTANCES = 1024
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HostError(Exception):
    """The test host could not be built, booted, entered or torn down; says why."""


@dataclass(frozen=True)
class BootReport:
    """How a boot went."""

    state: str
    """What ``systemctl is-system-running --wait`` said: ``running`` or ``degraded``."""
    seconds: float
    """From starting nspawn to that answer."""
    failed: tuple[str, ...] = ()
    """The failed units (why the state is ``degraded``)."""


@dataclass
class Timings:
    """What this host's life cost (seconds), for reports and benchmarks."""

    copy: float = 0.0
    boots: list[float] = field(default_factory=list)
    install: float = 0.0


def _raise_inotify_limit() -> None:
    # The default of 128 inotify instances per user runs out with a few booted hosts, and
    # systemd then fails with "Too many open files" (sysctl -w fs.inotify...).
    knob = Path("/proc/sys/fs/inotify/max_user_instances")
    if int(knob.read_text()) < INOTIFY_INSTANCES:
        knob.write_text(f"{INOTIFY_INSTANCES}\n")


def copy_tree(src: Path, dst: Path) -> float:
    """``cp -a --reflink=auto``: a full copy with every attribute (shared extents where
    the filesystem can: btrfs, xfs). Returns the seconds it took."""
    began = time.monotonic()
    proc.run(["cp", "-a", "--reflink=auto", "--no-target-directory", str(src), str(dst)],
             timeout=1800)
    return time.monotonic() - began


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            kids = []
        out.extend(kids)
        todo.extend(kids)
    return out


def _is_container_init(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return False
    nspid = next((line.split()[1:] for line in status.splitlines()
                  if line.startswith("NSpid:")), [])
    return len(nspid) > 1 and nspid[-1] == "1" and comm == "systemd"


def mounts_under(path: Path) -> list[str]:
    """Mount points at or under ``path`` in this mount namespace."""
    prefix = str(path).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(path) or point.startswith(prefix):
            found.append(point)
    return found


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def _pid_namespace() -> int:
    """This process's PID namespace (its inode): pids are only comparable within one."""
    return os.stat("/proc/self/ns/pid").st_ino


def _owner_file(root: Path) -> Path:
    return root.parent / f"{root.name}.owner.json"


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _cmdline_has(pid: int, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def sweep_stale(hosts: Path) -> list[str]:
    """Remove the hosts under ``hosts`` whose creating process is gone (a killed test
    run): their nspawn and PID 1 are killed (only when they are that host's), then their
    root removed. Returns the names removed. A host made in another PID namespace is left
    alone: its creator's pid means nothing here (the sweep of a run there removes it)."""
    removed = []
    for owner_file in hosts.glob("*.owner.json"):
        try:
            owner = json.loads(owner_file.read_text())
        except (OSError, ValueError):
            continue
        creator = int(owner.get("creator", 0))
        if owner.get("creator_pidns", _pid_namespace()) != _pid_namespace():
            continue
        if owner.get("persistent") or (
                proc.alive(creator) and _start_time(creator) == owner.get("creator_start")):
            continue
        root = Path(owner["root"])
        nspawn, leader = int(owner.get("nspawn", 0)), int(owner.get("leader", 0))
        if leader and _is_container_init(leader) and _same_file(f"/proc/{leader}/root", root):
            proc.signal_pid(leader, signal.SIGKILL)
        if nspawn and _cmdline_has(nspawn, str(root)):
            proc.signal_pid(nspawn, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(proc.alive(p) for p in (leader, nspawn) if p) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        if mounts_under(root):
            continue
        shutil.rmtree(root, ignore_errors=True)
        owner_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.rmdir(f"/run/systemd/nspawn/propagate/{owner.get('name', '')}")
        removed.append(str(owner.get("name", root.name)))
    return removed


class Host:
    """A Debian test host: its root folder, and while booted its nspawn and PID 1."""

    def __init__(self, root: Path, *, name: str, workdir: Path, recipe: Recipe = BASE,
                 network: Network | None = None, loop_devices: bool = False,
                 nspawn_options: Sequence[str] = ()) -> None:
        self.recipe = recipe
        """What the root was built from."""
        self.root = root
        """The host's root folder: files put here are seen inside at the same path."""
        self.name = name
        """Machine name and hostname (unique on the machine)."""
        self.workdir = workdir
        self.network: Network = network or PrivateNetwork()
        self.loop_devices = loop_devices
        self.nspawn_options = list(nspawn_options)
        self.timings = Timings()
        self.persistent = False
        """Never removed as stale by another run (see ``create``)."""
        self._nspawn: subprocess.Popen[bytes] | None = None
        self._leader = 0

    # -- creation --------------------------------------------------------------------------
    @classmethod
    def create(cls, recipe: Recipe = BASE, workdir: Path | None = None, *,
               name: str = "", network: Network | None = None, loop_devices: bool = False,
               nspawn_options: Sequence[str] = (), persistent: bool = False,
               area: Path | None = None) -> Host:
        """A new host for ``workdir`` (state, console log; its root a copy of the recipe's
        cached root, built first on a cache miss). ``name`` defaults to a random one
        (``au-`` and 10 hex digits), never one derived from ``workdir``: two runs whose
        private ``/tmp`` folders both hold ``pytest-of-root/pytest-0`` would otherwise
        give two hosts one name, one root folder, one cgroup and one nspawn folder. A host
        whose creating process ended without destroying it (a test run killed) is removed
        by the next ``create``, unless it was made ``persistent`` (the
        hosts of ``python -m tests.host``). ``area``: the filesystem the root goes on
        (default: the cache's XFS, ``cache.reflink_area``), e.g. a btrfs of the test's
        own."""
        if workdir is None:
            raise HostError("Host.create needs a work folder (e.g. pytest's tmp_path)")
        workdir.mkdir(parents=True, exist_ok=True)
        if (workdir / "host.json").exists():
            raise HostError(f"{workdir} has a host already: one host per work folder")
        cached = ensure_root(recipe)
        name = name or f"au-{secrets.token_hex(5)}"
        area = area or reflink_area()
        # On the cache's XFS a copy shares the cached root's extents; else a full copy.
        root = area / "hosts" / name if area else workdir / "root"
        root.parent.mkdir(parents=True, exist_ok=True)
        if area:
            sweep_stale(area / "hosts")
        if root.exists():
            raise HostError(f"{root} exists already (a host named {name} is running?)")
        host = cls(root, name=name, workdir=workdir, recipe=recipe, network=network,
                   loop_devices=loop_devices, nspawn_options=nspawn_options)
        host.persistent = persistent
        host.timings.copy = copy_tree(cached, root)
        (root / "etc/hostname").write_text(name + "\n")
        host._write_state()
        return host

    def path(self, inside: str) -> Path:
        """Where the host's absolute path ``inside`` is in its root folder."""
        if not inside.startswith("/"):
            raise ValueError(f"not an absolute path: {inside!r}")
        return self.root / inside.lstrip("/")

    def write_file(self, inside: str, content: str | bytes, mode: int = 0o644) -> Path:
        """Put a file into the host (parents created, owned by root)."""
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        target.write_bytes(data)
        target.chmod(mode)
        return target

    # -- booting ---------------------------------------------------------------------------
    def nspawn_argv(self) -> list[str]:
        """The whole ``systemd-nspawn`` command line of a boot."""
        argv = ["systemd-nspawn", "--quiet", "-D", str(self.root), "--register=no",
                "--keep-unit", "-b", "-M", self.name, "--console=read-only",
                "--link-journal=no", f"--system-call-filter={' '.join(ALLOWED_SYSCALLS)}",
                *self.network.nspawn_options()]
        if self.loop_devices:
            argv += [f"--bind={d}" for d in
                     ["/dev/loop-control", *sorted(map(str, Path("/dev").glob("loop[0-9]*")))]]
        return [*argv, *self.nspawn_options]

    @property
    def booted(self) -> bool:
        return self._nspawn is not None and self._nspawn.poll() is None

    @property
    def leader(self) -> int:
        """The host's PID 1 as seen from the build machine."""
        if not self.booted or not self._leader:
            raise HostError(f"host {self.name} is not booted")
        return self._leader

    def boot(self, timeout: float = 180.0) -> BootReport:
        """Start nspawn and wait until the host's systemd has finished starting up."""
        if self.booted:
            raise HostError(f"host {self.name} is booted already")
        _raise_inotify_limit()
        began = time.monotonic()
        deadline = began + timeout
        # A cgroup of its own: hosts booted side by side must not share nspawn's payload.
        self._nspawn = proc.spawn(cgroup.wrap(self.name, self.nspawn_argv()),
                                  env=proc.base_env(), log=self.workdir / "console.log")
        self._leader = 0
        self._write_state()
        while not self._leader:
            self._leader = next((p for p in _descendants(self._nspawn.pid)
                                 if _is_container_init(p)), 0)
            if not self._leader:
                self._check_alive(deadline, "start its systemd")
                time.sleep(0.02)
        self._write_state()
        state = ""
        while state not in ("running", "degraded"):
            self._check_alive(deadline, "finish starting up")
            done = self.run(["systemctl", "is-system-running", "--wait"],
                            timeout=max(1.0, deadline - time.monotonic()))
            state = done.stdout.strip()
            if state not in ("running", "degraded"):
                time.sleep(0.1)  # its bus is not up yet
        failed = tuple(line.split()[0] for line in self.run(
            ["systemctl", "list-units", "--state=failed", "--plain", "--no-legend",
             "--no-pager"]).stdout.splitlines() if line.strip())
        report = BootReport(state, time.monotonic() - began, failed)
        self.timings.boots.append(report.seconds)
        return report

    def _check_alive(self, deadline: float, what: str) -> None:
        assert self._nspawn is not None
        if self._nspawn.poll() is not None:
            raise HostError(f"host {self.name}: systemd-nspawn exited "
                            f"{self._nspawn.returncode} before it could {what}; "
                            f"see {self.workdir / 'console.log'}")
        if time.monotonic() > deadline:
            raise HostError(f"host {self.name} did not {what} in time; "
                            f"see {self.workdir / 'console.log'}")

    def _write_state(self) -> None:
        state = {"name": self.name, "root": str(self.root),
                 "nspawn": self._nspawn.pid if self._nspawn else 0, "leader": self._leader,
                 "argv": self._nspawn.args if self._nspawn else []}
        (self.workdir / "host.json").write_text(json.dumps(state, indent=1) + "\n")
        if self.root.exists():
            me = os.getpid()
            owner = {**state, "creator": me, "creator_start": _start_time(me),
                     "creator_pidns": _pid_namespace(),
                     "persistent": self.persistent}
            _owner_file(self.root).write_text(json.dumps(owner) + "\n")

    # -- running commands ------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, timeout: float = 120.0,
            env: Mapping[str, str] | None = None, check: bool = False,
            input: bytes | None = None, service: bool = False) -> proc.Completed:
        """Run ``argv`` inside the host as root (no shell) and return its exit code and
        output. The environment is a clean one of the host (``PATH``, ``LANG``, ``HOME``)
        plus ``env``. ``check`` raises on failure.

        By default the command enters all the host's namespaces with ``nsenter`` and has
        the full privileges of root on a real machine. ``service=True`` runs it as a
        transient unit of the host's systemd instead (``systemd-run --pipe --wait``): it
        then has what anything the host's systemd or sshd starts has there (nspawn's
        capability bounding set and system call filter, the host's cgroup)."""
        full_env = {"PATH": HOST_PATH, "LANG": "C.UTF-8", "HOME": "/root", **(env or {})}
        inner = list(argv)
        if service:
            inner = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect",
                     "--service-type=exec", f"--property=RuntimeMaxSec={int(timeout) + 1}",
                     *(f"--setenv={k}={v}" for k, v in full_env.items()), "--", *inner]
        try:
            return proc.run(["nsenter", "-t", str(self.leader), "-a", "--", *inner],
                            env=full_env, timeout=timeout, check=check, input_bytes=input)
        except ProcessError as exc:
            raise HostError(f"host {self.name}: {' '.join(argv)}: {exc.message}") from exc

    # -- reboot, power cut, shutdown -------------------------------------------------------
    def _wait_exit(self, timeout: float) -> int | None:
        assert self._nspawn is not None
        try:
            return self._nspawn.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def reboot(self, timeout: float = 180.0) -> BootReport:
        """``systemctl reboot`` inside; nspawn exits 133; the host boots again."""
        self.run(["systemctl", "reboot"], timeout=30)
        code = self._wait_exit(timeout)
        if code != REBOOT_EXIT:
            raise HostError(f"host {self.name}: nspawn ended with {code} on reboot "
                            f"(expected {REBOOT_EXIT})")
        self._after_exit()
        return self.boot(timeout)

    def power_cut(self) -> None:
        """Every process of the host killed at once (SIGKILL of its PID 1, which takes its
        whole PID namespace, then of nspawn). Written files stay as the kernel has them;
        call ``boot()`` to power it on again."""
        if self._nspawn is None:
            return
        if self._leader:
            proc.signal_pid(self._leader, signal.SIGKILL)
        if self._wait_exit(10) is None:
            self._nspawn.kill()
            self._nspawn.wait()
        self._after_exit()

    def shutdown(self, timeout: float = 60.0) -> bool:
        """A clean poweroff (SIGTERM to nspawn: the host's systemd shuts down); a power cut
        when it takes longer than ``timeout``. True when it was clean."""
        if self._nspawn is None or self._nspawn.poll() is not None:
            self._after_exit()
            return True
        self._nspawn.send_signal(signal.SIGTERM)
        clean = self._wait_exit(timeout) == 0
        if not clean:
            self.power_cut()
        self._after_exit()
        return clean

    def _after_exit(self) -> None:
        # nspawn cannot remove its propagation folder when /run is not a tmpfs.
        with contextlib.suppress(OSError):
            os.rmdir(f"/run/systemd/nspawn/propagate/{self.name}")
        self._leader = 0
        self._write_state()

    def destroy(self) -> None:
        """Shut the host down (or kill it) and remove its root folder. Refuses to remove
        anything while a mount is under the root (it would go through the mount)."""
        self.shutdown(timeout=30)
        self._nspawn = None
        cgroup.remove(self.name)
        left = mounts_under(self.root)
        if left:
            raise HostError(f"host {self.name}: mounts left under its root: {left}")
        if self.root.exists():
            shutil.rmtree(self.root)
        self._write_state()
        _owner_file(self.root).unlink(missing_ok=True)

    def disk_usage(self) -> int:
        """Bytes the root folder uses on disk (``du``)."""
        out = proc.run(["du", "-s", "-B1", "--one-file-system", str(self.root)], timeout=300)
        return int(out.stdout.split()[0])

    def __enter__(self) -> Host:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()

    # -- the project -----------------------------------------------------------------------
    def install_project(self) -> float:
        """Install the tool offline: ``/opt/activeupgrade`` is copied in from the cache (a
        venv of the host's Python with the run-time dependencies, ``cache.ensure_venv``),
        the project's wheel and the wheelhouse are put into the host, ``pip --no-index``
        installs the project there, and ``/usr/local/bin/au`` points at its ``au``. Returns
        the seconds it took (building the wheels and the venv on a cache miss included)."""
        began = time.monotonic()
        venv = ensure_venv(self.recipe)
        house = self.path(WHEELS_IN_HOST)
        house.mkdir(parents=True, exist_ok=True)
        for wheel in [ensure_project_wheel(), *ensure_wheelhouse().glob("*.whl")]:
            shutil.copy2(wheel, house / wheel.name)
        if self.path(VENV).exists():
            raise HostError(f"host {self.name}: {VENV} exists already")
        copy_tree(venv, self.path(VENV))
        pip_env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
        self.run([f"{VENV}/bin/pip", "install", "-q", "--no-index", "--find-links",
                  WHEELS_IN_HOST, "activeupgrade"], check=True, timeout=600, env=pip_env)
        link = self.path("/usr/local/bin/au")
        link.unlink(missing_ok=True)
        link.symlink_to(f"{VENV}/bin/au")
        self.timings.install = time.monotonic() - began
        return self.timings.install

    def au(self, *args: str, timeout: float = 300.0, env: Mapping[str, str] | None = None,
           check: bool = False) -> proc.Completed:
        """Run the installed ``au ARGS`` inside the host, as an operator would."""
        return self.run(["au", *args], timeout=timeout, env=env, check=check)
