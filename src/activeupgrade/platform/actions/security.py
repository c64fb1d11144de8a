"""Which action files may run (SPEC §6, §9): refuse anything an unprivileged user could
have changed, and anything outside the upgraded software.

An action file must exist, be a regular executable file, not be writable by group or
others, be owned by root when the tool runs as root (or by root or the tool's user
otherwise), and lie on a system volume of the configuration. Its whole path must be
trusted too (``safepath``): every folder on it owned by root and not writable by others,
and a symbolic link on it only when root made it — and where it leads must still be on a
system volume. Nobody else can then change what is checked before it runs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from activeupgrade.config.model import ActionSpec, Config, VolumeRole
from activeupgrade.errors import ActionError, SecurityError
from activeupgrade.instance import is_root
from activeupgrade.safepath import check_trusted


def on_system_volume(path: str, cfg: Config) -> bool:
    """Whether ``path`` lies on a system volume: below its live path, or below the replica
    that live path leads to (a live path that is a link, when the tool cannot mount)."""
    p = Path(os.path.normpath(path))
    roots = {Path(where) for v in cfg.volumes if v.role is VolumeRole.SYSTEM
             for where in (v.path, os.path.realpath(v.path))}
    return any(p == root or root in p.parents for root in roots)


def vet(spec: ActionSpec, cfg: Config) -> Path:
    """The action's file if it may run; else ActionError/SecurityError saying why."""
    path = Path(spec.file)
    if not path.is_absolute():
        raise ActionError(
            f"action {spec.name}: file {spec.file!r} is not an absolute path",
            hint="Give the absolute path of the executable.",
        )
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ActionError(
            f"action {spec.name}: file {path} is missing",
            hint="Install the action's file, or remove the action from the configuration.",
        ) from None
    except OSError as exc:
        raise ActionError(f"action {spec.name}: cannot read {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ActionError(f"action {spec.name}: {path} is not a regular file")
    if not st.st_mode & 0o111:
        raise ActionError(
            f"action {spec.name}: {path} is not executable",
            hint=f"chmod 0755 {path}",
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SecurityError(
            f"action {spec.name}: {path} is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); refused",
            hint=f"chmod go-w {path}",
        )
    allowed = {0} if is_root() else {0, os.geteuid()}
    if st.st_uid not in allowed:
        raise SecurityError(
            f"action {spec.name}: {path} is owned by uid {st.st_uid}, not root; refused",
            hint=f"chown root: {path}",
        )
    if not on_system_volume(str(path), cfg):
        raise ActionError(
            f"action {spec.name}: {path} is not on a system volume of the configuration",
            hint="Move it onto a system volume so that it is upgraded with the software "
            "(or add that volume with role system).",
        )
    vet_path(spec, cfg)
    return path


def _within_system_volume(real: Path, cfg: Config) -> bool:
    """``real`` is on a system volume as it is now shown (without root the live path is a
    link to the active replica: what it leads to counts as the volume)."""
    for v in cfg.volumes:
        if v.role is not VolumeRole.SYSTEM:
            continue
        for top in {Path(v.path), Path(os.path.realpath(v.path))}:
            if real == top or top in real.parents:
                return True
    return False


def vet_path(spec: ActionSpec, cfg: Config) -> Path:
    """The real file ``spec``'s path leads to, if its whole path is trusted and stays on a
    system volume; else SecurityError/ActionError naming the component at fault."""
    path = Path(spec.file)
    owners = frozenset({0} if is_root() else {0, os.geteuid()})
    try:
        real = check_trusted(path, owners=owners).real
    except SecurityError as exc:
        raise SecurityError(f"action {spec.name}: {exc.message}", hint=exc.hint,
                            details=exc.details) from None
    except OSError as exc:
        raise ActionError(f"action {spec.name}: cannot follow {path}: {exc.strerror}") from None
    if real != path and not _within_system_volume(real, cfg):
        raise SecurityError(
            f"action {spec.name}: {path} leads to {real}, which is not on a system volume "
            "of the configuration; refused",
            hint="Give the action's own file on a system volume, not a link out of it.",
        )
    return real
