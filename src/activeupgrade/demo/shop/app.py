"""The demo "shop": a small order service, stdlib only (it is installed software, not the tool).

Started by the tool's supervisor with its listening socket inherited as systemd socket
activation does (``LISTEN_FDS``/``LISTEN_PID``: fd 3); it binds ``--listen`` itself only when
run by hand. Orders go to an append-only JSON lines file on the data volume, fsynced before
the answer; its log (starts, stops, failures) goes to a file on the system volume, which is
what the backup saves from the old release at merge.

Routes: ``POST /orders`` (JSON body) → ``{"id": ...}``; ``GET /orders/<id>``; ``GET /version``;
``GET /health``; and, from release 2, ``GET /orders`` → ``{"count": N}``.

On SIGTERM it stops accepting, finishes the requests in flight, and exits 0: connections
that arrive meanwhile wait in the held socket's queue for the next instance.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

SD_LISTEN_FDS_START = 3


def load_release() -> dict[str, Any]:
    """The release this copy of the software belongs to (written by the package builder)."""
    path = Path(__file__).resolve().parent / "release.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {"version": "0.0.0-dev", "features": []}
    return data


class OrderBook:
    """Orders in ``orders.jsonl``: one JSON object per line, appended and fsynced."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "orders.jsonl"
        self.lock = threading.Lock()
        self.index: dict[str, dict[str, Any]] = {}
        self.offset = 0
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.refresh()

    def refresh(self) -> None:
        """Read lines appended since the last look (by this or an earlier instance)."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            if line.strip():
                record = json.loads(line)
                self.index[str(record["id"])] = record
        self.offset += end

    def add(self, order: dict[str, Any], version: str) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "item": str(order.get("item", "")),
            "qty": int(order.get("qty", 1)),
            "client_ref": str(order.get("client_ref", "")),
            "created": time.time(),
            "served_by": version,
        }
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self.lock:
            os.write(self.fd, line)
            # The answer promises durability: the order is on disk before the client hears.
            os.fsync(self.fd)
            self.index[record["id"]] = record
        return record

    def get(self, order_id: str) -> dict[str, Any] | None:
        with self.lock:
            if order_id not in self.index:
                self.refresh()
            return self.index.get(order_id)

    def count(self) -> int:
        with self.lock:
            self.refresh()
            return len(self.index)


class Shop(ThreadingHTTPServer):
    """The HTTP server; joins its request threads on close so none is cut off."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, sock: socket.socket, book: OrderBook, log: Path,
                 release: dict[str, Any]) -> None:
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()
        self.book = book
        self.release = release
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = open(log, "a", buffering=1)
        self.log_lock = threading.Lock()

    def log_line(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self.log_lock:
            self.log_file.write(f"{stamp} shop {self.release['version']} pid {os.getpid()}: "
                                f"{text}\n")


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no client holds a connection to an old
    # instance across a switchover.
    protocol_version = "HTTP/1.0"
    server: Shop

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log_line(format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Only failures: the log lives on a system volume, which the tool resyncs and
        # verifies while the shop serves; a line per request would make it never settle.
        if str(code).isdigit() and int(code) >= 500:
            super().log_request(code, size)

    def reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Shop-Version", str(self.server.release["version"]))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        release = self.server.release
        if path == "/health":
            self.reply(200, {"status": "ok"})
        elif path == "/version":
            self.reply(200, {"version": release["version"], "pid": os.getpid()})
        elif path == "/orders" and "order-count" in release.get("features", []):
            self.reply(200, {"count": self.server.book.count()})
        elif path.startswith("/orders/"):
            record = self.server.book.get(path[len("/orders/"):])
            if record is None:
                self.reply(404, {"error": "no such order"})
            else:
                self.reply(200, record)
        else:
            self.reply(404, {"error": f"no route {path}"})

    def do_POST(self) -> None:
        if self.path != "/orders":
            self.reply(404, {"error": f"no route {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            order = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(order, dict):
                raise ValueError("an order is a JSON object")
        except ValueError as exc:
            self.reply(400, {"error": str(exc)})
            return
        record = self.server.book.add(order, str(self.server.release["version"]))
        self.reply(201, {"id": record["id"], "served_by": record["served_by"]})


def inherited_socket() -> socket.socket | None:
    """The first socket passed by socket activation, if it was passed to this process."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def bound_socket(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(128)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shop", description="the demo order service")
    parser.add_argument("--data", required=True, help="folder of orders.jsonl (data volume)")
    parser.add_argument("--log", required=True, help="request log file (system volume)")
    parser.add_argument("--listen", default="127.0.0.1:8080",
                        help="HOST:PORT to bind when not socket-activated")
    args = parser.parse_args(argv)
    release = load_release()
    sock = inherited_socket()
    activated = sock is not None
    if sock is None:
        sock = bound_socket(args.listen)
    server = Shop(sock, OrderBook(Path(args.data)), Path(args.log), release)
    host, port = sock.getsockname()[:2]
    server.log_line(f"started ({'socket-activated' if activated else 'bound'} on {host}:{port})")

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it cannot run on this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.02)
    server.server_close()  # joins the requests in flight; the held socket stays open
    server.log_line("stopped")
    server.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
