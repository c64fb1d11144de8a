"""Start the demo shop as the tool's keeper does: a held socket passed as fd 3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from activeupgrade.demo.load import ShopClient

LAUNCH = (
    "import os, sys; os.environ['LISTEN_PID'] = str(os.getpid()); "
    "os.environ['LISTEN_FDS'] = '1'; os.execv(sys.executable, [sys.executable] + sys.argv[1:])"
)


def held_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def start_activated(sock: socket.socket, prefix: Path, data: Path) -> subprocess.Popen[bytes]:
    fd = sock.fileno()

    def to_fd3() -> None:
        os.dup2(fd, 3)
        os.set_inheritable(3, True)

    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(prefix / "app.py"), "--data", str(data),
         "--log", str(prefix / "log" / "shop.log")],
        preexec_fn=to_fd3, pass_fds=(fd, 3), close_fds=True, start_new_session=True,
        stdin=subprocess.DEVNULL,
    )


def wait_healthy(shop: ShopClient, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    probe = ShopClient(shop.host, shop.port, timeout=1.0)
    while True:
        try:
            if probe.request("GET", "/health")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the shop did not become healthy")
        time.sleep(0.05)
