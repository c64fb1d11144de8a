"""The one-off configuration of ``au check`` and ``au plan``: ``--config FILE`` or
``--volume PATH[:ROLE]``, instead of the loaded configuration."""

from __future__ import annotations

import argparse

from activeupgrade.instance import Instance


def add_arguments(parser: argparse.ArgumentParser, verb: str, json_text: str) -> None:
    """``--json`` (printing ``json_text``), ``--volume`` and ``--config`` (``verb``: what
    the command does with the configuration)."""
    parser.add_argument("--json", action="store_true", help=f"print {json_text} as JSON")
    parser.add_argument("--volume", action="append", metavar="PATH[:ROLE]",
                        help="without a file: select this volume (repeatable; role system "
                        "or data)")
    parser.add_argument("--config", metavar="FILE",
                        help=f"{verb} this configuration instead of the loaded one")


def config_path(args: argparse.Namespace) -> str:
    """The one-off configuration file the arguments name, or "" for the loaded one.

    A bad ``--config`` file is refused here, with its file, line and field; ``--volume``
    values become an ordinary, checked configuration file of the instance.
    """
    from activeupgrade.config import loader  # only when a file is given
    from activeupgrade.config.adhoc import volumes_file

    if args.config:
        path = loader.resolve(Instance.from_env(), args.config)
        loader.load_file(path)
        return str(path)
    if args.volume:
        return str(volumes_file(Instance.from_env(), args.volume))
    return ""
