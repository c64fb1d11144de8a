"""Building, entering and stopping the Upgrade Side.

Privileged (root; ``isolation`` auto or namespaces): a long-lived init (``side/init.py``)
in new PID, mount, UTS, IPC, network and user namespaces, started with ``proc.spawn`` in a
session of its own (it outlives a restart of the daemon). It shows the view planned by
``side/view.py`` on a scratch of its own: a tmpfs at ``AU_HOME/run/upgrade-side/scratch``
(size ``[upgrade_side] scratch_size``), kept across a restart of the side and discarded
when it stops for good (merge, abort). Its network namespace has loopback and one end of
a veth pair (the private link, ``side/link.py``) whose other end stays on the host.
Commands enter it through ``side/enter.py``.

Unprivileged (or ``isolation = "directory"``): a working directory with a link to each
Upgrade Side replica and an environment naming them; nothing is isolated, and the record
says so.

The record ``AU_HOME/run/side.json`` (durable) holds the init's pid, the state shown as
partner state, the view as built and what isolation exists.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from activeupgrade import proc
from activeupgrade.config.model import Config, VolumeRole
from activeupgrade.durable import write_durably
from activeupgrade.errors import ProcessError, SideError
from activeupgrade.instance import Instance, is_root, unix_path
from activeupgrade.model.states import PartnerState
from activeupgrade.platform.side import kernel, link, mounts, view
from activeupgrade.platform.volumes import registry
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.store.db import Store


class SideState(StrEnum):
    """The life of the Upgrade Side as its record (``run/side.json``) says."""

    BOOTING = "booting"
    """Being built and started."""
    UP = "up"
    """Running: commands can enter it."""
    REBOOTING = "rebooting"
    """Stopped to be started again (its writes kept)."""
    SHUTTING_DOWN = "shutting-down"
    """Being stopped."""
    SHUT_DOWN = "shut-down"
    """Stopped (merge or abort)."""
    CRASHED = "crashed"
    """Did not come up, or died."""

    @property
    def partner(self) -> PartnerState:
        """The partner state (SPEC §2.4) this record state shows as."""
        return {SideState.BOOTING: PartnerState.OS_BOOTING,
                SideState.UP: PartnerState.OS_UP,
                SideState.REBOOTING: PartnerState.OS_REBOOTING,
                SideState.SHUTTING_DOWN: PartnerState.OS_SHUTTING_DOWN,
                SideState.SHUT_DOWN: PartnerState.OS_SHUT_DOWN,
                SideState.CRASHED: PartnerState.OS_CRASHED}[self]


NAMESPACES = "namespaces"
DIRECTORY = "directory"
MISSING_IN_DIRECTORY = ["mount namespace (data volumes and live paths stay visible)",
                        "network namespace (production network reachable)",
                        "PID namespace (processes visible and signalable)",
                        "UTS namespace (same hostname)"]
ISOLATION = ["PID, mount, UTS, IPC and network namespaces of its own",
             "a user namespace of its own: every mount of its view locked, no capability "
             "over the host", "the instance folder and every tool state hidden",
             "data volumes replaced by empty scratch", "writes outside the volumes on "
             "scratch, listed before merge, never kept"]
BOOT_TIMEOUT = 60.0

link_names = link.link_names


def record_path(instance: Instance) -> Path:
    return instance.run / "side.json"


def folder(instance: Instance) -> Path:
    """Where the side's root mount point and scratch live (hidden from the side)."""
    return instance.run / "upgrade-side"


def scratch_path(instance: Instance) -> Path:
    return folder(instance) / "scratch"


def read(instance: Instance) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(record_path(instance).read_text())
        return data
    except (FileNotFoundError, ValueError):
        return {}


def write(instance: Instance, rec: dict[str, Any]) -> None:
    instance.run.mkdir(parents=True, exist_ok=True)
    write_durably(record_path(instance), json.dumps(rec, indent=1).encode())


def set_state(instance: Instance, state: SideState) -> None:
    rec = read(instance)
    if rec:
        rec["state"] = state
        write(instance, rec)


def mode_for(cfg: Config) -> str:
    iso = cfg.upgrade_side.isolation
    if iso == DIRECTORY or (iso == "auto" and not is_root()):
        return DIRECTORY
    if not is_root():
        raise SideError("an isolated Upgrade Side needs root",
                        hint='Run as root, or set [upgrade_side] isolation = "directory".')
    return NAMESPACES


def alive(pid: int) -> bool:
    # An exited child of ours is a zombie until Python's own reaper collects it (at the next
    # start of a process): proc.alive counts a zombie as ended.
    return proc.alive(pid)


def probe(instance: Instance, timeout: float = 2.0) -> bool:
    """The init answers a ping on its socket (directory mode: the folder exists)."""
    rec = read(instance)
    if rec.get("mode") == DIRECTORY:
        return Path(rec.get("workdir", "/nonexistent")).is_dir()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(unix_path(instance.run / "side.sock"))
            s.sendall(b"ping\n")
            return s.recv(16).startswith(b"pong")
    except OSError:
        return False


def _directory_env(store: Store, cfg: Config) -> tuple[list[list[str]], dict[str, str]]:
    binds: list[list[str]] = []
    env: dict[str, str] = {}
    for vol in registry.for_config(store, cfg):
        up = vol.session.get("upgrade")
        if vol.role is VolumeRole.SYSTEM and up:
            binds.append([vol.replica(up), vol.path])
            env[f"AU_VOLUME_{vol.name.upper().replace('-', '_').replace('.', '_')}"] = (
                vol.replica(up))
    return binds, env


def _start_directory(instance: Instance, store: Store, cfg: Config,
                     rec: dict[str, Any]) -> dict[str, Any]:
    binds, env = _directory_env(store, cfg)
    work = instance.run / "side"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for replica_path, path in binds:
        (work / Path(path).name).symlink_to(replica_path)
    rec.update(workdir=str(work), missing=MISSING_IN_DIRECTORY, state=SideState.UP, env=env)
    write(instance, rec)
    return rec


def start(instance: Instance, store: Store, cfg: Config, session: str,
          sync: SyncState | None = None) -> dict[str, Any]:
    """Build and boot the Upgrade Side (idempotent: a running one is kept)."""
    rec = read(instance)
    if rec.get("session") == session and rec.get("state") == SideState.UP and (
        rec.get("mode") == DIRECTORY or alive(int(rec.get("pid", 0)))
    ):
        return rec
    if rec:
        # A side of another session (left by a crash) is discarded; one of this session
        # (a restart, or a retry after a crash) keeps its scratch.
        stop(instance, final_state=SideState.REBOOTING, discard=rec.get("session") != session)
    mode = mode_for(cfg)
    hostname = cfg.upgrade_side.hostname or f"{socket.gethostname()}-upgrade"
    rec = {"session": session, "mode": mode, "state": SideState.BOOTING, "hostname": hostname,
           "started": time.time()}
    write(instance, rec)
    if mode == DIRECTORY:
        return _start_directory(instance, store, cfg, rec)
    try:
        _boot(instance, store, cfg, rec, sync)
    except SideError:
        _halt(instance, rec)
        rec["state"] = SideState.CRASHED
        write(instance, rec)
        raise
    rec["state"] = SideState.UP
    write(instance, rec)
    return rec


def _mount_scratch(instance: Instance, cfg: Config) -> Path:
    scratch = scratch_path(instance)
    (folder(instance) / "root").mkdir(parents=True, exist_ok=True, mode=0o700)
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not mounts.mounted_at(str(scratch)):
        try:
            kernel.mount("au-side-scratch", str(scratch), "tmpfs",
                         kernel.MS_NOSUID | kernel.MS_NODEV,
                         f"size={cfg.upgrade_side.scratch_size},mode=0700")
        except OSError as exc:
            raise SideError(f"the Upgrade Side's scratch cannot be mounted on {scratch}: "
                            f"{exc.strerror}",
                            hint="Check [upgrade_side] scratch_size (e.g. \"4G\" or "
                            "\"25%\").") from exc
    return scratch


def _unmount_scratch(instance: Instance) -> None:
    scratch = str(scratch_path(instance))
    while mounts.mounted_at(scratch):
        kernel.umount(scratch, kernel.MNT_DETACH)


def _boot(instance: Instance, store: Store, cfg: Config, rec: dict[str, Any],
          sync: SyncState | None = None) -> None:
    from activeupgrade.platform.side import packages

    scratch = _mount_scratch(instance, cfg)
    plan = view.plan(instance, store, cfg, scratch=str(scratch),
                     stage=packages.stage_folder(instance),
                     memo=None if sync is None else sync.others)
    placeholders = []
    for layer in plan.layers:
        if layer.placeholder and not os.path.lexists(layer.placeholder):
            Path(layer.placeholder).touch(mode=0o644)
            placeholders.append(layer.placeholder)
    rec.update(view=plan.to_list(), placeholders=placeholders, scratch=str(scratch),
               isolation=ISOLATION)
    write(instance, rec)
    spec_path = instance.run / "side-spec.json"
    sock = instance.run / "side.sock"
    sock.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({
        "root": str(folder(instance) / "root"), "scratch": str(scratch),
        "layers": plan.to_list(), "hostname": rec["hostname"], "socket": str(sock)}))
    instance.logs.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    try:
        child = proc.spawn(
            [sys.executable, "-m", "activeupgrade.platform.side.init", str(spec_path),
             str(write_end)],
            env=proc.base_env({"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}),
            log=instance.logs / "side.log", pass_fds=(write_end,),
        )
    except ProcessError as exc:
        os.close(read_end)
        raise SideError(f"the Upgrade Side's init cannot start: {exc.message}") from exc
    finally:
        os.close(write_end)
    rec["outer_pid"] = child.pid
    try:
        _await(instance, rec, read_end)
    finally:
        os.close(read_end)
    try:
        rec.update(link.create(instance, cfg, int(rec["pid"])))
    except (ProcessError, SideError) as exc:
        raise SideError(f"the Upgrade Side's private link cannot be made: {exc.message}",
                        hint="See `ip link` and [upgrade_side] host_address/side_address.",
                        ) from exc


def _await(instance: Instance, rec: dict[str, Any], fd: int) -> None:
    """Read the init's reports until it is up; a SideError saying why when it is not."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SideError(f"the Upgrade Side did not come up within {BOOT_TIMEOUT:.0f}s",
                            hint=f"See {instance.logs / 'side.log'}.")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            raise SideError("the Upgrade Side's init ended before it was up"
                            + _log_tail(instance), hint=f"See {instance.logs / 'side.log'}.")
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = json.loads(line)
            if "error" in msg:
                raise SideError(f"the Upgrade Side cannot be built: {msg['error']}",
                                hint="Nothing of the host was changed; fix the cause and "
                                "retry (`au retry`), or abort.",
                                details={k: v for k, v in msg.items() if k != "error"})
            if "pid" in msg:
                rec["pid"] = int(msg["pid"])
                write(instance, rec)
            if msg.get("stage") == "built":
                rec.update(base=msg.get("base", ""), created=msg.get("created", []),
                           notes=msg.get("notes", []))
            if msg.get("stage") == "up":
                # The user namespace identifies this Upgrade Side: entering checks it, so a
                # recycled pid never leads a command into someone else's namespaces.
                rec["userns"] = os.stat(f"/proc/{rec['pid']}/ns/user").st_ino
                return


def _log_tail(instance: Instance) -> str:
    try:
        lines = (instance.logs / "side.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    tail = [ln for ln in lines[-5:] if ln.strip()]
    return (": " + " / ".join(tail)) if tail else ""


def _our_child(pid: int) -> bool:
    """Whether ``pid`` is still a child of this process (collecting it if it ended): the
    outer process of a side started by an earlier daemon is not, and its pid may belong to
    someone else by now."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def _ours(rec: dict[str, Any], pid: int) -> bool:
    """``pid`` is still the Upgrade Side's init: alive and in the user namespace recorded
    when it came up (after a reboot the pid belongs to some other process)."""
    if not pid or not alive(pid):
        return False
    if not rec.get("userns"):
        return True
    try:
        return os.stat(f"/proc/{pid}/ns/user").st_ino == int(rec["userns"])
    except OSError:
        return False


def _halt(instance: Instance, rec: dict[str, Any]) -> None:
    """End the init (and its outer process) of ``rec``, and the private link."""
    pid = int(rec.get("pid") or 0)
    if _ours(rec, pid):
        proc.signal_pid(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            proc.signal_pid(pid, signal.SIGKILL)
    outer = int(rec.get("outer_pid") or 0)
    if outer and _our_child(outer):
        deadline = time.monotonic() + 10
        while _our_child(outer) and alive(outer) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _our_child(outer) and alive(outer):
            proc.signal_pid(outer, signal.SIGKILL)
    link.remove(instance, str(rec.get("host_link") or ""))
    for placeholder in rec.get("placeholders", []):
        _remove_placeholder(placeholder)


def _remove_placeholder(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if st.st_size == 0 and not os.path.islink(path):
        os.unlink(path)


def stop(instance: Instance, *, final_state: SideState = SideState.SHUT_DOWN,
         discard: bool | None = None) -> None:
    """Stop everything in the Upgrade Side (idempotent). Its scratch is discarded unless it
    reboots (``final_state=SideState.REBOOTING``) or ``discard`` says otherwise."""
    rec = read(instance)
    if not rec:
        return
    if rec.get("mode") == NAMESPACES:
        if rec.get("pid") and alive(int(rec["pid"])):
            rec["state"] = SideState.SHUTTING_DOWN
            write(instance, rec)
        _halt(instance, rec)
        if discard if discard is not None else final_state is not SideState.REBOOTING:
            _unmount_scratch(instance)
    rec["state"] = final_state
    write(instance, rec)


def remove(instance: Instance) -> None:
    stop(instance)
    if read(instance).get("mode") == NAMESPACES or scratch_path(instance).exists():
        _unmount_scratch(instance)
    shutil.rmtree(instance.run / "side", ignore_errors=True)
    shutil.rmtree(folder(instance), ignore_errors=True)
    for name in ("side.json", "side-spec.json", "side.sock"):
        (instance.run / name).unlink(missing_ok=True)


def enter_argv(instance: Instance, user: str = "", cwd: str = "/") -> list[str]:
    """The prefix that runs a command inside the Upgrade Side ([] in directory mode)."""
    rec = read(instance)
    if rec.get("mode") != NAMESPACES:
        return []
    if not rec.get("pid") or not alive(int(rec["pid"])):
        raise SideError("the Upgrade Side is not running",
                        hint="Start it with `au restart-upgrade-side` (in Split).")
    argv = [sys.executable, "-m", "activeupgrade.platform.side.enter", str(rec["pid"])]
    if rec.get("userns"):
        argv += ["--userns", str(rec["userns"])]
    if user:
        argv += ["--user", user]
    if cwd and cwd != "/":
        argv += ["--cwd", cwd]
    return [*argv, "--"]


def exec_env(instance: Instance) -> tuple[dict[str, str], str | None]:
    """Environment and working directory of a command run on the Upgrade Side.

    Namespaces: the environment of the entering helper (it gives the command a clean one
    of its own, ``side/enter.py``); directory mode: the command's own."""
    rec = read(instance)
    if rec.get("mode") == DIRECTORY:
        env = proc.base_env({"ACTIVE_UPGRADE_SIDE": "Upgrade", **rec.get("env", {})})
        env["AU_SIDE_ROOT"] = rec.get("workdir", "")
        return env, rec.get("workdir")
    env = {"PATH": proc.SAFE_PATH, "LANG": os.environ.get("LANG", "C.UTF-8"),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
           "ACTIVE_UPGRADE_SIDE": "Upgrade"}
    return env, None


def run(instance: Instance, argv: list[str], timeout: float = 3600.0,
        on_line: proc.LineSink | None = None, *, user: str = "",
        env: dict[str, str] | None = None,
        stop: Callable[[], bool] | None = None) -> proc.Completed:
    """Run ``argv`` on the Upgrade Side as ``user`` (default root) and return what it did
    (no check); ``on_line`` receives every output line as it comes; ``stop`` cancels it
    (``proc.run``)."""
    rec = read(instance)
    if not rec or rec.get("state") != SideState.UP:
        raise SideError("the Upgrade Side is not up",
                        hint="It exists in Split and PrepareMerge; see `au status`.")
    base, cwd = exec_env(instance)
    return proc.run([*enter_argv(instance, user), *argv], env={**base, **(env or {})},
                    cwd=cwd, timeout=timeout, check=False, on_line=on_line, stop=stop)
