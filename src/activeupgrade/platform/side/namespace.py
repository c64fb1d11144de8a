"""Building, entering and stopping the Upgrade Side.

Privileged (root, ``isolation`` auto or namespaces): a long-lived init process
(``side/init.py``) in new mount, UTS, network and PID namespaces, started with
``proc.spawn`` in a session of its own: it outlives a restart of the daemon. Its network
namespace has loopback and one end of a veth pair (the private link) whose other end stays
on the host.

Unprivileged (or ``isolation = "directory"``): a working directory with a link to each
Upgrade Side replica and an environment naming them; nothing is isolated, and the
record says so.

The record ``AU_HOME/run/side.json`` (durable) holds the init's pid, the state shown as
partner state, and what isolation exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from activeupgrade import proc
from activeupgrade.config.model import Config, VolumeRole
from activeupgrade.durable import write_durably
from activeupgrade.errors import SideError
from activeupgrade.instance import Instance, is_root, unix_path
from activeupgrade.platform.volumes import registry
from activeupgrade.store.db import Store

NAMESPACES = "namespaces"
DIRECTORY = "directory"
MISSING_IN_DIRECTORY = ["mount namespace (data volumes and live paths stay visible)",
                        "network namespace (production network reachable)",
                        "PID namespace (processes visible and signalable)",
                        "UTS namespace (same hostname)"]
_children: dict[int, subprocess.Popen[bytes]] = {}


def record_path(instance: Instance) -> Path:
    return instance.run / "side.json"


def read(instance: Instance) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(record_path(instance).read_text())
        return data
    except (FileNotFoundError, ValueError):
        return {}


def write(instance: Instance, rec: dict[str, Any]) -> None:
    instance.run.mkdir(parents=True, exist_ok=True)
    write_durably(record_path(instance), json.dumps(rec, indent=1).encode())


def set_state(instance: Instance, state: str) -> None:
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


def link_names(instance: Instance) -> tuple[str, str]:
    tag = hashlib.sha1(str(instance.home).encode()).hexdigest()[:6]
    return f"au{tag}h", f"au{tag}s"


def alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        child.poll()
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


def _layout(store: Store, cfg: Config) -> tuple[list[list[str]], list[str], dict[str, str]]:
    binds: list[list[str]] = []
    masks: list[str] = []
    env: dict[str, str] = {}
    for vol in registry.for_config(store, cfg):
        up = vol.session.get("upgrade")
        if vol.role is VolumeRole.SYSTEM and up:
            binds.append([vol.replica(up), vol.path])
            env[f"AU_VOLUME_{vol.name.upper().replace('-', '_').replace('.', '_')}"] = (
                vol.replica(up))
        elif vol.role is VolumeRole.DATA:
            masks.append(vol.path)
    return binds, masks, env


def _child_pid(unshare_pid: int, deadline: float) -> int:
    path = f"/proc/{unshare_pid}/task/{unshare_pid}/children"
    while time.monotonic() < deadline:
        try:
            kids = Path(path).read_text().split()
        except FileNotFoundError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.02)
    raise SideError("the Upgrade Side's init did not start",
                    hint="See AU_HOME/logs/side.log.")


def start(instance: Instance, store: Store, cfg: Config, session: str) -> dict[str, Any]:
    """Build and boot the Upgrade Side (idempotent: a running one is kept)."""
    rec = read(instance)
    if rec.get("session") == session and rec.get("state") == "up" and (
        rec.get("mode") == DIRECTORY or alive(int(rec.get("pid", 0)))
    ):
        return rec
    if rec:
        stop(instance)
    mode = mode_for(cfg)
    binds, masks, env = _layout(store, cfg)
    hostname = cfg.upgrade_side.hostname or f"{socket.gethostname()}-upgrade"
    rec = {"session": session, "mode": mode, "state": "booting", "hostname": hostname,
           "started": time.time(), "env": env}
    write(instance, rec)
    if mode == DIRECTORY:
        work = instance.run / "side"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for replica_path, path in binds:
            (work / Path(path).name).symlink_to(replica_path)
        rec.update(workdir=str(work), missing=MISSING_IN_DIRECTORY, state="up")
        write(instance, rec)
        return rec
    spec = instance.run / "side-spec.json"
    sock = instance.run / "side.sock"
    sock.unlink(missing_ok=True)
    spec.write_text(json.dumps({"binds": binds, "masks": masks, "hostname": hostname,
                                "socket": str(sock)}))
    instance.logs.mkdir(parents=True, exist_ok=True)
    child = proc.spawn(
        ["unshare", "--fork", "--pid", "--mount", "--uts", "--net", "--mount-proc",
         "--propagation", "private", sys.executable, "-m",
         "activeupgrade.platform.side.init", str(spec)],
        env=proc.base_env({"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}),
        log=instance.logs / "side.log",
    )
    _children[child.pid] = child
    deadline = time.monotonic() + 30
    pid = _child_pid(child.pid, deadline)
    rec.update(pid=pid, unshare_pid=child.pid)
    write(instance, rec)
    while not probe(instance, 0.5):
        if not alive(pid) or time.monotonic() > deadline:
            rec["state"] = "crashed"
            write(instance, rec)
            raise SideError("the Upgrade Side did not come up",
                            hint=f"See {instance.logs / 'side.log'}.")
        time.sleep(0.05)
    _link(instance, cfg, pid, rec)
    rec["state"] = "up"
    write(instance, rec)
    return rec


def _link(instance: Instance, cfg: Config, pid: int, rec: dict[str, Any]) -> None:
    """The private link: a veth pair, one end moved into the Upgrade Side."""
    host, side = link_names(instance)
    proc.run(["ip", "link", "del", host], check=False, timeout=10)
    proc.run(["ip", "link", "add", host, "type", "veth", "peer", "name", side], timeout=10)
    proc.run(["ip", "link", "set", side, "netns", str(pid)], timeout=10)
    proc.run(["ip", "addr", "add", cfg.upgrade_side.host_address, "dev", host], timeout=10)
    proc.run(["ip", "link", "set", host, "up"], timeout=10)
    inside = ["nsenter", "-t", str(pid), "-n", "ip"]
    proc.run([*inside, "link", "set", "lo", "up"], timeout=10)
    proc.run([*inside, "addr", "add", cfg.upgrade_side.side_address, "dev", side], timeout=10)
    proc.run([*inside, "link", "set", side, "up"], timeout=10)
    rec.update(host_link=host, side_link=side, host_address=cfg.upgrade_side.host_address,
               side_address=cfg.upgrade_side.side_address)


def stop(instance: Instance, *, final_state: str = "shut-down") -> None:
    """Stop everything in the Upgrade Side (idempotent)."""
    rec = read(instance)
    if not rec:
        return
    if rec.get("mode") == NAMESPACES and rec.get("pid"):
        pid = int(rec["pid"])
        if alive(pid):
            rec["state"] = "shutting-down"
            write(instance, rec)
            proc.signal_pid(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                proc.signal_pid(pid, signal.SIGKILL)
        for extra in (rec.get("unshare_pid"),):
            if extra:
                child = _children.pop(int(extra), None)
                if child is not None:
                    child.wait(5)
        proc.run(["ip", "link", "del", link_names(instance)[0]], check=False, timeout=10)
    rec["state"] = final_state
    write(instance, rec)


def remove(instance: Instance) -> None:
    stop(instance)
    shutil.rmtree(instance.run / "side", ignore_errors=True)
    for name in ("side.json", "side-spec.json", "side.sock"):
        (instance.run / name).unlink(missing_ok=True)


def enter_argv(instance: Instance) -> list[str]:
    """The prefix that runs a command inside the Upgrade Side ([] in directory mode)."""
    rec = read(instance)
    if rec.get("mode") != NAMESPACES:
        return []
    if not rec.get("pid") or not alive(int(rec["pid"])):
        raise SideError("the Upgrade Side is not running",
                        hint="Start it with `au restart-upgrade-side` (in Split).")
    return ["nsenter", "-t", str(rec["pid"]), "-m", "-u", "-n", "-p", "--"]


def exec_env(instance: Instance) -> tuple[dict[str, str], str | None]:
    """Environment and working directory of a command run on the Upgrade Side."""
    rec = read(instance)
    env = proc.base_env({"ACTIVE_UPGRADE_SIDE": "Upgrade", **rec.get("env", {})})
    if rec.get("mode") == DIRECTORY:
        env["AU_SIDE_ROOT"] = rec.get("workdir", "")
        return env, rec.get("workdir")
    return env, None


def run(instance: Instance, argv: list[str], timeout: float = 3600.0,
        on_line: proc.LineSink | None = None) -> proc.Completed:
    """Run ``argv`` on the Upgrade Side and return what it did (no check); ``on_line``
    receives every output line as it comes."""
    rec = read(instance)
    if not rec or rec.get("state") != "up":
        raise SideError("the Upgrade Side is not up",
                        hint="It exists in Split and PrepareMerge; see `au status`.")
    env, cwd = exec_env(instance)
    return proc.run([*enter_argv(instance), *argv], env=env, cwd=cwd, timeout=timeout,
                    check=False, on_line=on_line)
