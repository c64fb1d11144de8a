"""Which program a configured command runs, and whether it may run (SPEC §5, §9).

The tool runs as root and starts the programs of the configuration: a supervised service's
``command`` and a health check's ``argv``. Like an action file (``actions.security``), such
a program is refused when anyone but root could have changed it: the file and every folder
and link on its path must be a trusted path (``safepath``: owned by root, not writable by
others or a group other than root's). A bare name is looked up on the PATH the program
gets, as ``execvp`` would, so the file checked is the file that runs; the folders of that
PATH before it are not consulted again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from activeupgrade import proc
from activeupgrade.errors import SecurityError, ServiceError
from activeupgrade.safepath import check_trusted


def resolve(exe: str, *, path: str, workdir: str = "") -> Path | None:
    """The file ``exe`` names for ``execvp`` with ``PATH=path`` in ``workdir``: a name with
    a slash as given (relative to ``workdir``), a bare name from the first PATH folder that
    holds an executable of that name; None when there is none."""
    if "/" in exe:
        return Path(os.path.normpath(os.path.join(workdir or "/", exe)))
    for folder in path.split(":"):
        if folder and os.path.isabs(folder):
            candidate = os.path.join(folder, exe)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return Path(candidate)
    return None


def trusted(argv: tuple[str, ...] | list[str], *, what: str, env: Mapping[str, str],
            workdir: str = "") -> Path:
    """The real file ``argv[0]`` runs (``env``'s PATH, ``workdir``), if it exists and its
    whole path is trusted; ServiceError (missing) or SecurityError (unsafe) naming ``what``
    and the component at fault otherwise."""
    if not argv:
        raise ServiceError(f"{what}: the command is empty",
                           hint="Give the program and its arguments as a list.")
    exe = argv[0]
    found = resolve(exe, path=env.get("PATH", proc.SAFE_PATH), workdir=workdir)
    if found is None:
        raise ServiceError(f"{what}: {exe} not found on the PATH {env.get('PATH', '')!r}",
                           hint="Install the program, or give its absolute path.")
    try:
        real = check_trusted(found).real
    except SecurityError as exc:
        raise SecurityError(f"{what}: {exc.message}", hint=exc.hint,
                            details=exc.details) from None
    except FileNotFoundError:
        raise ServiceError(f"{what}: {found} does not exist",
                           hint="Install the program, or fix the command.") from None
    except OSError as exc:
        raise ServiceError(f"{what}: cannot follow {found}: {exc.strerror}",
                           hint="Install the program, or fix the command.") from None
    if not os.access(real, os.X_OK):
        raise ServiceError(f"{what}: {found} is not executable", hint=f"chmod 0755 {real}")
    return real
