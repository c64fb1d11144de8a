"""Entering the Upgrade Side: one command, with the side's root, namespaces and credentials.

    python -m activeupgrade.platform.side.enter INIT_PID [--userns INODE] [--user U]
        [--cwd DIR] [--env NAME=VALUE]... -- COMMAND [ARGS...]

Joins the init's IPC, UTS, network and PID namespaces (the host's root may), then its user
namespace and its mount namespace, takes its root as the root and ``--cwd`` (default ``/``)
as the working folder, drops the capabilities the side never has, and runs COMMAND as a
child (so that it is a process of the side's PID namespace) as USER, resolved in the side's
own ``/etc/passwd`` and ``/etc/group`` (default root). The child's environment is clean:
a standard PATH, HOME/USER/LOGNAME/SHELL of the user inside, the locale and terminal
variables, ``ACTIVE_UPGRADE_*`` and what ``--env`` gives; nothing else of the caller's
(no AU_HOME, no token, no PYTHONPATH). This process waits, passes on SIGTERM, SIGINT and
SIGHUP, and ends the way the command ended (its exit value, or the same signal).

Failures before the command runs exit 125 (cannot enter), 126 (cannot run) or 127 (not
found), with the reason on stderr, as shells do.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from dataclasses import dataclass, field

from activeupgrade.platform.side import kernel as k
from activeupgrade.platform.side.kernel import DROPPED_CAPABILITIES

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEPT = ("LANG", "LANGUAGE", "TZ", "TERM", "COLUMNS", "LINES", "DEBIAN_FRONTEND",
        "DEBIAN_PRIORITY", "DEBCONF_NONINTERACTIVE_SEEN", "APT_LISTCHANGES_FRONTEND",
        "SYSTEMD_OFFLINE")
"""Variables of the caller that reach the command (with every LC_* and ACTIVE_UPGRADE_*)."""
ORDER = ("ipc", "uts", "net", "pid", "user", "mnt")
"""Namespaces owned by the host first (joining them needs the host's root), then the
user namespace, then the mount namespace it owns."""


class EnterError(Exception):
    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int
    groups: list[int]
    home: str
    shell: str
    name: str


def _lines(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n").split(":") for line in fh if ":" in line]
    except OSError:
        return []


def account(user: str, etc: str = "/etc") -> Account:
    """``user`` (a name or a uid) as the side's own files know it."""
    passwd = _lines(f"{etc}/passwd")
    entry = next((p for p in passwd if len(p) >= 7 and p[0] == user), None)
    if entry is None and user.isdigit():
        entry = next((p for p in passwd if len(p) >= 7 and p[2] == user),
                     [user, "x", user, user, "", "/", "/bin/sh"])
    if entry is None:
        raise EnterError(f"no user {user!r} in the Upgrade Side's /etc/passwd")
    name, uid, gid = entry[0], int(entry[2]), int(entry[3])
    groups = [gid]
    for g in _lines(f"{etc}/group"):
        if len(g) >= 4 and name in g[3].split(",") and g[2].isdigit():
            groups.append(int(g[2]))
    return Account(uid, gid, sorted(set(groups)), entry[5] or "/", entry[6] or "/bin/sh", name)


def environment(caller: dict[str, str], extra: dict[str, str], who: Account) -> dict[str, str]:
    env = {key: value for key, value in caller.items()
           if key in KEPT or key.startswith(("LC_", "ACTIVE_UPGRADE_"))}
    env.setdefault("LANG", "C.UTF-8")
    env.update(PATH=SAFE_PATH, HOME=who.home, USER=who.name, LOGNAME=who.name,
               SHELL=who.shell, ACTIVE_UPGRADE_SIDE="Upgrade")
    env.update(extra)
    return env


def join(pid: int, userns: int = 0) -> None:
    """Join the init's namespaces and root (this process, before it forks the command).
    ``userns``: the inode of the side's user namespace, when known: a pid recycled by
    another process is refused."""
    try:
        fds = {name: os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
               for name in ORDER}
        root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise EnterError(f"the Upgrade Side (init pid {pid}) is not running: "
                         f"{exc.strerror}") from exc
    if userns and os.fstat(fds["user"]).st_ino != userns:
        for fd in (*fds.values(), root):
            os.close(fd)
        raise EnterError(f"pid {pid} is no longer the Upgrade Side's init (it has ended)")
    try:
        for name in ORDER:
            try:
                k.setns(fds[name])
            except OSError as exc:
                raise EnterError(f"cannot join the Upgrade Side's {name} namespace: "
                                 f"{exc.strerror}") from exc
        os.fchdir(root)
        os.chroot(".")
        k.drop_bounding(DROPPED_CAPABILITIES)
    finally:
        for fd in (*fds.values(), root):
            os.close(fd)


def _child(argv: list[str], env: dict[str, str], who: Account, cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as exc:
        sys.stderr.write(f"au: Upgrade Side: cannot enter {cwd}: {exc.strerror}\n")
        os._exit(125)
    try:
        os.setgroups(who.groups)
        os.setgid(who.gid)
        os.setuid(who.uid)
    except OSError as exc:
        sys.stderr.write(f"au: Upgrade Side: cannot become {who.name}: {exc.strerror}\n")
        os._exit(125)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        sys.stderr.write(f"au: Upgrade Side: command not found: {argv[0]}\n")
        os._exit(127)
    except OSError as exc:
        sys.stderr.write(f"au: Upgrade Side: cannot run {argv[0]}: {exc.strerror}\n")
        os._exit(126)


def run(pid: int, argv: list[str], *, user: str = "root", cwd: str = "/",
        extra: dict[str, str] | None = None, userns: int = 0) -> int:
    """Run ``argv`` inside; returns what this process should exit with."""
    join(pid, userns)
    who = account(user)
    env = environment(dict(os.environ), extra or {}, who)
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        _child(argv, env, who, cwd)
    forward = lambda signum, frame: os.kill(child, signum)  # noqa: E731
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        ended_by = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # end the same way, no core
        if ended_by not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(ended_by, signal.SIG_DFL)
        os.kill(os.getpid(), ended_by)
    return os.waitstatus_to_exitcode(status)


@dataclass
class Request:
    """What the command line asks for."""

    pid: int
    argv: list[str]
    user: str = "root"
    cwd: str = "/"
    extra: dict[str, str] = field(default_factory=dict)
    userns: int = 0


USAGE = "usage: enter PID [--userns INODE] [--user U] [--cwd DIR] [--env K=V] -- COMMAND"


def parse(args: list[str]) -> Request:
    if "--" not in args:
        raise EnterError(USAGE)
    split = args.index("--")
    head, argv = args[:split], args[split + 1:]
    if not head or not argv or not head[0].isdigit():
        raise EnterError(USAGE)
    req = Request(int(head[0]), argv)
    rest = iter(head[1:])
    for flag in rest:
        value = next(rest, "")
        if flag == "--user":
            req.user = value or "root"
        elif flag == "--cwd":
            req.cwd = value or "/"
        elif flag == "--userns" and value.isdigit():
            req.userns = int(value)
        elif flag == "--env" and "=" in value:
            name, _, val = value.partition("=")
            req.extra[name] = val
        else:
            raise EnterError(f"unknown option {flag}")
    return req


def main(args: list[str]) -> int:
    try:
        req = parse(args)
        return run(req.pid, req.argv, user=req.user, cwd=req.cwd, extra=req.extra,
                   userns=req.userns)
    except EnterError as exc:
        sys.stderr.write(f"au: Upgrade Side: {exc}\n")
        return exc.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
