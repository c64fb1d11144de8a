"""The command prefix that runs a program inside the Upgrade Side.

The Upgrade Side part (``platform/side/namespace.py``) owns how to enter it; this module only
asks it for ``enter_argv(instance)`` (e.g. an ``nsenter`` prefix, or ``env`` with the
Upgrade Side's environment in unprivileged mode) and says clearly when it cannot.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from activeupgrade.errors import AUError, SideError
from activeupgrade.instance import Instance


def enter_argv(instance: Instance) -> list[str]:
    """argv prefix for running a command inside the Upgrade Side of ``instance``."""
    try:
        module = importlib.import_module("activeupgrade.platform.side.namespace")
    except ImportError as exc:
        raise SideError(
            "this build cannot enter the Upgrade Side (platform.side.namespace is missing)",
            hint="Install a complete build of Active Upgrade.",
        ) from exc
    func = cast(Callable[[Instance], list[str]] | None, getattr(module, "enter_argv", None))
    if func is None:
        raise SideError("platform.side.namespace has no enter_argv")
    try:
        return list(func(instance))
    except AUError:
        raise
    except Exception as exc:
        raise SideError(f"cannot enter the Upgrade Side: {exc}") from exc
