"""``au``: the command-line entry point. Errors become output here and only here."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from activeupgrade import __version__
from activeupgrade.errors import AUError, UsageError, os_error

COMMAND_MODULES: tuple[str, ...] = (
    "core",
    "actions",
    "log",
    "demo",
    "web",
    "console",
    "service",
    "volume",
    "host",
    "side",
    "packages",
    "config",
    "check",
    "plan",
    "docs",
)
"""Modules under ``activeupgrade.cli`` that register subcommands, in help order."""

COMMANDS: dict[str, str] = {
    "status": "core", "init": "core", "daemon": "core", "history": "core", "cancel": "core",
    "split": "actions", "merge": "actions", "confirm": "actions", "commit": "actions",
    "abort": "actions",
    "finish": "actions", "retry": "actions",
    "log": "log", "demo": "demo", "web": "web", "console": "console", "service": "service",
    "volume": "volume", "host": "host", "exec": "side", "shell": "side",
    "restart-upgrade-side": "side", "side": "side", "packages": "packages",
    "config": "config", "check": "check", "plan": "plan", "completion": "docs",
    "manpage": "docs",
}
"""Which module registers each command: a command imports only its own module, so that
``au status`` starts fast (``au --help`` imports them all)."""


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main renders every error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", hint=f"Run `{self.prog} --help`.")


def build_parser(command: str | None = None) -> Parser:
    """The parser of every command, or of ``command`` only (its module alone is imported)."""
    parser = Parser(
        prog="au",
        description="Active Upgrade for Linux: upgrade a running host while its critical "
        "applications keep serving.",
    )
    parser.add_argument("--version", action="version", version=f"au {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    only = COMMANDS.get(command or "")
    for name in COMMAND_MODULES:
        if only is None or name == only:
            importlib.import_module(f"activeupgrade.cli.{name}").register(sub)
    return parser


def _command_of(args: list[str]) -> str | None:
    """The command word of ``args`` (None when there is none, or for help and version)."""
    for arg in args:
        if arg in ("-h", "--help", "--version"):
            return None
        if not arg.startswith("-"):
            return arg
    return None


def render_error(exc: AUError) -> None:
    red = bold = ""
    end = ""
    if sys.stderr.isatty() and not os.environ.get("NO_COLOR") and os.environ.get(
            "TERM") != "dumb":
        red, bold, end = "\033[31m", "\033[1m", "\033[0m"
    print(f"{red}au: error:{end} {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"{bold}hint:{end} {exc.hint}", file=sys.stderr)


def _print_traceback() -> None:
    import traceback  # only with --debug: a command's start stays short

    traceback.print_exc()


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list or os.environ.get("AU_DEBUG") == "1"
    if args_list[:1] == ["--version"]:
        print(f"au {__version__}")  # without building every command's parser
        return 0
    try:
        parser = build_parser(_command_of(args_list))
        args = parser.parse_args(args_list)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        code: int = args.func(args)
        return code
    except AUError as exc:
        if debug:
            _print_traceback()
        render_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("au: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        found = os_error(exc, "write a file of the tool")  # a full or read-only disk
        if found is None:
            raise
        if debug:
            _print_traceback()
        render_error(found)
        return found.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
