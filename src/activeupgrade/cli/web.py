"""``au web``: open the web console (a TCP listener in the daemon) and print its URL and token."""

from __future__ import annotations

import argparse
import sys

from activeupgrade.api.address import DEFAULT_LISTEN, is_loopback, parse_listen
from activeupgrade.api.client import Client
from activeupgrade.cli.output import print_json


def cmd_web(args: argparse.Namespace) -> int:
    listen = args.listen or DEFAULT_LISTEN
    host, _ = parse_listen(listen)
    remote = bool(args.listen) and not is_loopback(host)
    if remote:
        print(f"au: warning: the web console will be reachable from the network on {listen}, "
              "over plain HTTP; anyone who sees the token controls the upgrade",
              file=sys.stderr)
    client = Client.from_env()
    answer = client.post("/web/start", {"listen": listen, "remote": remote})
    if args.json:
        print_json(answer)
        return 0
    state = "already open" if answer.get("already") else "open"
    print(f"web console {state}: {answer['url']}")
    print(f"token: {answer['token']}")
    print(f"(the token is kept in {answer['token_file']}; API clients send "
          "`Authorization: Bearer TOKEN`)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("web", help="open the web console and print its URL and token")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help=f"address to listen on (default {DEFAULT_LISTEN}; a non-loopback "
                   "address must be named here and is warned about)")
    p.add_argument("--json", action="store_true", help="print URL, token and token file as JSON")
    p.set_defaults(func=cmd_web)
