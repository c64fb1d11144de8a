#!/usr/bin/env python3
"""A small HTTP service for the tests: serves on the socket it is given (LISTEN_FDS).

``GET /`` answers ``<version> <pid>``. SIGTERM stops accepting new connections, finishes the
one being served and exits: connections still queued stay in the held socket's backlog for
the next instance. Options: ``--version TEXT``, ``--start-delay SECONDS`` (before serving),
``--record FILE`` (appends ``first <time>``/``last <time>`` lines of served requests),
``--version-file FILE`` (the version, e.g. from the software volume), ``--bind HOST:PORT``
(bind its own socket: the naive restart the benchmark compares against). A version
starting with ``sick`` answers 503. With ``NOTIFY_SOCKET`` it says ``READY=1`` (sd_notify)
once it serves (a sick one never does): it runs but never passes its health check.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default="v1")
    parser.add_argument("--start-delay", type=float, default=0.0)
    parser.add_argument("--record", default="")
    parser.add_argument("--version-file", default="", help="read the version from this file")
    parser.add_argument("--bind", default="",
                        help="HOST:PORT to bind itself (the naive baseline: no held socket)")
    args = parser.parse_args()
    if args.version_file:
        with open(args.version_file) as fh:
            args.version = fh.read().strip()
    if args.bind:
        host, _, port = args.bind.rpartition(":")
        time.sleep(args.start_delay)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
        listener.listen(4096)
        return serve(listener, args)
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        print(f"LISTEN_PID {os.environ.get('LISTEN_PID')} is not my pid {os.getpid()}",
              file=sys.stderr)
        return 2
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        print("no LISTEN_FDS", file=sys.stderr)
        return 2
    listener = socket.socket(fileno=3)
    time.sleep(args.start_delay)
    return serve(listener, args)


def serve(listener: socket.socket, args: argparse.Namespace) -> int:
    stopping = False

    def on_term(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    notify = os.environ.get("NOTIFY_SOCKET", "")
    if notify and not args.version.startswith("sick"):  # sd_notify: it serves from now on
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"READY=1", "\0" + notify[1:] if notify.startswith("@") else notify)
    print(f"{args.version} serving as pid {os.getpid()} names={os.environ.get('LISTEN_FDNAMES')}",
          flush=True)
    first = 0.0
    last = 0.0
    while not stopping:
        try:
            ready, _, _ = select.select([listener], [], [], 0.05)
        except InterruptedError:
            continue
        if not ready:
            continue
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                continue
            body = f"{args.version} {os.getpid()}\n".encode()
            # A version named "sick..." runs but is never healthy (the health gate's test).
            status = b"503 Unavailable" if args.version.startswith("sick") else b"200 OK"
            conn.sendall(
                b"HTTP/1.0 " + status + b"\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
            last = time.time()
            first = first or last
    if args.record:
        with open(args.record, "a") as fh:
            fh.write(f"{args.version} {os.getpid()} first {first} last {last}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
