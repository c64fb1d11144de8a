"""The one subprocess wrapper.

argv lists only (never a shell), an explicit environment, stdin closed, a timeout, the whole
process group killed on timeout, and failures explained (not found, signal, exit N).
Output can be streamed line by line to a callback (custom actions, installers).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from activeupgrade.errors import ProcessError

LineSink = Callable[[str, str], None]
"""Called with (stream name "stdout"|"stderr", line without newline)."""

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal explicit environment for child processes."""
    env = {
        "PATH": os.environ.get("PATH", SAFE_PATH),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": os.environ.get("HOME", "/root"),
    }
    for key in ("AU_HOME", "TZ", "PYTHONPATH", "VIRTUAL_ENV"):
        if key in os.environ:
            env[key] = os.environ[key]
    if extra:
        env.update(extra)
    return env


@dataclass
class Completed:
    """The result of a finished process."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    lines: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False
    """Killed because the caller's ``stop`` said so (a cancel)."""

    @property
    def last_stderr_line(self) -> str:
        for line in reversed(self.stderr.splitlines()):
            if line.strip():
                return line.strip()
        return ""

    def explain(self) -> str:
        """Why the process failed, in words."""
        if self.timed_out:
            return f"timed out after {self.duration:.1f}s (process group killed)"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"killed by {name}"
        reason = f"exit {self.returncode}"
        if self.last_stderr_line:
            reason += f": {self.last_stderr_line}"
        return reason


def _kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = 300.0,
    check: bool = True,
    on_line: LineSink | None = None,
    preexec: Callable[[], None] | None = None,
    user: str | None = None,
    input_bytes: bytes | None = None,
    stop: Callable[[], bool] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Completed:
    """Run ``argv`` to completion in its own process group and return what it did.

    ``on_start`` is told the process's pid (also its process group id) as soon as it runs:
    a caller records it so that the group can be killed after a crash of the caller.

    ``check`` raises ProcessError on a non-zero exit, a signal or a timeout; the message says
    which. ``on_line`` receives every output line as it arrives. ``stop`` is asked about
    every 0.2 s: when it says True the process group is killed (the caller's cancel; the
    result then has ``stopped``).
    """
    args = [os.fspath(a) for a in argv]
    if not args:
        raise ProcessError("empty command")
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else base_env(),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,
            user=user,
            close_fds=True,
        )
    except FileNotFoundError as exc:
        raise ProcessError(
            f"command not found: {args[0]}",
            hint="Install the program or give its absolute path.",
        ) from exc
    except PermissionError as exc:
        raise ProcessError(
            f"permission denied running {args[0]}", hint="Check the file's mode and owner."
        ) from exc
    except OSError as exc:
        raise ProcessError(f"cannot run {args[0]}: {exc.strerror or exc}") from exc

    if on_start is not None:
        try:
            on_start(proc.pid)
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
    if input_bytes is not None and proc.stdin is not None:
        try:
            proc.stdin.write(input_bytes)
        finally:
            proc.stdin.close()
    out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    lines: list[tuple[str, str]] = []
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    deadline = None if timeout is None else started + timeout
    timed_out = False
    stopped = False
    poll = 1.0 if stop is None else 0.2

    def emit(name: str, raw: bytes) -> None:
        text = raw.decode(errors="replace")
        lines.append((name, text))
        if on_line is not None:
            on_line(name, text)

    while sel.get_map():
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if wait is not None and wait == 0.0:
            timed_out = True
            break
        if stop is not None and stop():
            stopped = True
            break
        for key, _ in sel.select(timeout=poll if wait is None else min(wait, poll)):
            name = str(key.data)
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                if partial[name]:
                    emit(name, partial[name])
                    partial[name] = b""
                continue
            out[name].append(chunk)
            data = partial[name] + chunk
            *complete, partial[name] = data.split(b"\n")
            for line in complete:
                emit(name, line)
    sel.close()
    if timed_out or stopped:
        _kill_group(proc)
    else:
        remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
    proc.wait()
    # Whatever the leader left behind in its group goes too: no stray children.
    _kill_group(proc)
    proc.stdout.close()
    proc.stderr.close()
    result = Completed(
        argv=args,
        returncode=proc.returncode,
        stdout=b"".join(out["stdout"]).decode(errors="replace"),
        stderr=b"".join(out["stderr"]).decode(errors="replace"),
        duration=time.monotonic() - started,
        timed_out=timed_out,
        lines=lines,
        stopped=stopped,
    )
    if check and (timed_out or result.returncode != 0):
        raise ProcessError(
            f"{Path(args[0]).name} failed: {result.explain()}",
            details={
                "argv": args, "returncode": result.returncode, "stderr": result.stderr[-4000:]
            },
        )
    return result


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    log: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start a long-lived child (a daemon, a keeper, the Upgrade Side's init) and return
    at once: argv list only, the explicit environment ``env``, stdin closed, stdout and
    stderr appended to ``log`` (else discarded), a session of its own (it outlives the
    caller's terminal and is never killed with the caller's process group), no inherited
    descriptors but ``pass_fds``. Failing to start is a ProcessError that says why."""
    args = [os.fspath(a) for a in argv]
    if not args:
        raise ProcessError("empty command")
    out = (open(log, "ab") if log is not None
           else open(os.devnull, "wb"))
    try:
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=dict(env), cwd=cwd,
            start_new_session=True, close_fds=True, pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError as exc:
        raise ProcessError(
            f"command not found: {args[0]}",
            hint="Install the program or give its absolute path.",
        ) from exc
    except OSError as exc:
        raise ProcessError(f"cannot run {args[0]}: {exc.strerror or exc}") from exc
    finally:
        out.close()


def alive(pid: int) -> bool:
    """True when process ``pid`` exists and is not a zombie (the one pid check).

    The process may end at any moment while it is looked at: every way of losing it
    (no such process, its ``/proc`` entry gone or unreadable mid-read) means "not alive".
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rpartition(b")")[2].split()[:1]
    except OSError:  # ENOENT or ESRCH: it ended between the two looks
        return False
    return state != [b"Z"]


def signal_pid(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False when the process is already gone (never raises for
    that: it may end between any check and the signal)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, ``/proc/PID/stat`` field 22);
    None when it is gone. With the pid it names one process, even after pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rpartition(b")")[2].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def group_members(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` now (read from ``/proc``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rpartition(b")")[2].split()
            if int(fields[2]) == pgid and fields[0] != b"Z":
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(found)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to process group ``pgid``; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def which(name: str) -> str | None:
    """Absolute path of ``name`` on the safe PATH, or None."""
    for d in (os.environ.get("PATH", "") + ":" + SAFE_PATH).split(":"):
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


def interactive(argv: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str],
                cwd: str | os.PathLike[str] | None = None) -> int:
    """Run ``argv`` on this terminal (stdin, stdout and stderr inherited) and wait for it:
    an interactive shell. Ctrl-C and Ctrl-\\ go to it, not to the caller. Returns its exit
    value (128+N when a signal N ended it)."""
    args = [os.fspath(a) for a in argv]
    if not args:
        raise ProcessError("empty command")
    try:
        child = subprocess.Popen(args, env=dict(env), cwd=cwd, close_fds=True)
    except FileNotFoundError as exc:
        raise ProcessError(f"command not found: {args[0]}",
                           hint="Install the program or give its absolute path.") from exc
    except OSError as exc:
        raise ProcessError(f"cannot run {args[0]}: {exc.strerror or exc}") from exc
    # Ignored here only after the start: the child keeps the default dispositions.
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
    try:
        code = child.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return code if code >= 0 else 128 - code
