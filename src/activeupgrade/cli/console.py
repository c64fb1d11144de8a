"""``au console``: the terminal console (Textual) over the daemon's API."""

from __future__ import annotations

import argparse

from activeupgrade.api.client import Client


def cmd_console(args: argparse.Namespace) -> int:
    from activeupgrade.ui.tui.app import ConsoleApp

    client = Client.from_env()
    try:
        ConsoleApp(client).run()
    finally:
        client.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("console", help="open the terminal console (status, actions, log)")
    p.set_defaults(func=cmd_console)
