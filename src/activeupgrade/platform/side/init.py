"""The init process of the Upgrade Side (PID 1 of its PID namespace).

Started by ``side/namespace.py`` inside fresh mount, UTS, network and PID namespaces.
It binds the Upgrade Side's replicas at the usual paths, masks data volumes with an
empty read-only tmpfs, sets the hostname, then answers liveness probes on a Unix socket
and reaps orphans until SIGTERM, when it stops everything inside and exits (the kernel
then kills whatever is left in the namespace).

    python -m activeupgrade.platform.side.init SPEC.json
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from activeupgrade import proc
from activeupgrade.instance import unix_path


def _serve(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(unix_path(Path(path)))
    os.chmod(path, 0o600)
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(2)
            try:
                if conn.recv(16).startswith(b"ping"):
                    conn.sendall(b"pong\n")
            except OSError:
                pass


def _stop(signum: int, frame: FrameType | None) -> None:
    try:
        os.kill(-1, signal.SIGTERM)  # every process of this PID namespace but us
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.05)
        except ChildProcessError:
            break
    os._exit(0)


def main(argv: list[str]) -> int:
    spec = json.loads(open(argv[1], encoding="utf-8").read())
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for replica, path in spec["binds"]:
        proc.run(["mount", "--bind", replica, path], timeout=30)
    for path in spec["masks"]:
        proc.run(["mount", "-t", "tmpfs", "-o", "ro,size=4k,mode=0755", "au-masked", path],
                 timeout=30)
    socket.sethostname(spec["hostname"])
    threading.Thread(target=_serve, args=(spec["socket"],), daemon=True).start()
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
