"""An instance: all the state of one Active Upgrade engine under one folder (``AU_HOME``).

Several instances run side by side (tests, the demo) by giving each its own ``AU_HOME``.
Only one engine may hold an instance at a time (an ``flock`` on ``engine.lock``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from activeupgrade.errors import InstanceError

ROOT_HOME = Path("/var/lib/activeupgrade")
ROOT_CONFIGS = Path("/etc/activeupgrade/configs")
INSTANCE_INDEX = Path("/run/activeupgrade/instances")
"""One file per instance whose engine ran on this host since boot (its ``AU_HOME``): the
Upgrade Side hides every instance's folder and data volumes, not only its own."""


UNIX_PATH_MAX = 107
"""Longest Unix socket path the kernel accepts (``sun_path`` is 108 bytes with its NUL)."""

_dir_fds: dict[str, int] = {}
_dir_fds_lock = threading.Lock()


def is_root() -> bool:
    return os.geteuid() == 0


def unix_path(path: Path | str) -> str:
    """The address to ``bind``/``connect`` a Unix socket at ``path``, however deep it is.

    A short path is returned as is. A longer one (a deep ``AU_HOME``) would fail with
    "AF_UNIX path too long", so its folder is opened once (``O_PATH``, kept for the life of
    the process) and the socket is named through it: ``/proc/self/fd/<fd>/<name>``, which
    the kernel resolves to the same file for both bind and connect. The file itself keeps
    its real path (``unlink``, ``chmod`` and ``exists`` work on that as usual).
    """
    text = os.fspath(path)
    if len(os.fsencode(text)) <= UNIX_PATH_MAX:
        return text
    parent, name = os.path.split(os.path.abspath(text))
    return f"/proc/self/fd/{_dir_fd(parent)}/{name}"


def _dir_fd(folder: str) -> int:
    """An ``O_PATH`` descriptor of ``folder``, reopened when the folder was replaced."""
    with _dir_fds_lock:
        fd = _dir_fds.get(folder)
        if fd is not None:
            try:
                held, now = os.fstat(fd), os.stat(folder)
                if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                    return fd
            except OSError:
                pass
            os.close(fd)
            del _dir_fds[folder]
        # CLOEXEC: children (applications, the daemon) must not inherit it.
        fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        _dir_fds[folder] = fd
        return fd


@dataclass(frozen=True)
class Instance:
    """The paths of one instance. Nothing here touches the disk except ``ensure``."""

    home: Path
    configs_override: Path | None = None

    @classmethod
    def from_env(cls) -> Instance:
        """``AU_HOME`` when set, else the default for root or for the current user."""
        env = os.environ.get("AU_HOME", "")
        if env:
            home = Path(env).expanduser()
            if not home.is_absolute():
                home = Path.cwd() / home
            return cls(home)
        if is_root():
            return cls(ROOT_HOME, ROOT_CONFIGS)
        state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return cls(Path(state) / "activeupgrade")

    @property
    def db(self) -> Path:
        return self.home / "state.db"

    @property
    def socket(self) -> Path:
        return self.home / "api.sock"

    @property
    def lock_file(self) -> Path:
        return self.home / "engine.lock"

    @property
    def replicas(self) -> Path:
        return self.home / "replicas"

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def backups(self) -> Path:
        return self.home / "backups"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        """Runtime files: Upgrade Side handles, supervisor records, held sockets."""
        return self.home / "run"

    @property
    def configs(self) -> Path:
        """The default configuration folder (``/etc/activeupgrade/configs`` for root)."""
        return self.configs_override or (self.home / "configs")

    @property
    def web_token(self) -> Path:
        return self.home / "web-token"

    def exists(self) -> bool:
        """True when an instance was created here (its state database exists)."""
        return self.db.exists()

    def ensure(self) -> None:
        """Create the instance folders, private to the owner."""
        try:
            for d in (self.home, self.replicas, self.staging, self.backups, self.logs, self.run):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.home, 0o700)
        except OSError as exc:
            raise InstanceError(
                f"cannot create the instance folder {self.home}: {exc.strerror}",
                hint="Set AU_HOME to a folder you can write, or run as root.",
            ) from exc


def register(home: Path) -> None:
    """Note ``home`` in the host's index of instances (as root; elsewhere nothing to do)."""
    if not is_root():
        return
    import hashlib  # rarely needed: a command's start stays short

    key = hashlib.sha1(os.fsencode(home)).hexdigest()[:16]
    try:
        INSTANCE_INDEX.mkdir(parents=True, exist_ok=True, mode=0o700)
        entry = INSTANCE_INDEX / key
        if not entry.exists():
            tmp = INSTANCE_INDEX / f".{key}.{os.getpid()}"
            tmp.write_bytes(os.fsencode(home))
            os.replace(tmp, entry)
    except OSError:
        pass  # a read-only /run: other instances' folders are then only hidden by path


def registered() -> list[Path]:
    """The instance folders in the host's index that still exist."""
    try:
        entries = sorted(INSTANCE_INDEX.iterdir())
    except OSError:
        return []
    homes = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            home = Path(os.fsdecode(entry.read_bytes()))
        except OSError:
            continue
        if home.is_dir():
            homes.append(home)
        else:
            entry.unlink(missing_ok=True)
    return homes


class EngineLock:
    """Exclusive lock on an instance: one engine per instance."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self._fd: int | None = None

    def acquire(self) -> None:
        self.instance.ensure()
        fd = os.open(self.instance.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InstanceError(
                f"another engine already holds the instance {self.instance.home} (pid {holder})",
                hint="Use that engine (`au status`), stop it, or set AU_HOME to another folder.",
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                os.close(fd)
                raise
            # The lock is the flock; the pid is only shown to a second engine. On a full
            # disk the daemon still starts, so that the operator can see and fix things.
        self._fd = fd
        register(self.instance.home)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> EngineLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
