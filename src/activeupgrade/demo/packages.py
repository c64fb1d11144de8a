"""The shop's release packages: tarballs built from the shop's source shipped with the tool.

Release 1 and release 2 come from the same source tree (``demo/shop``) and differ by their
``release.json`` (version and features), as two releases of one product do. Release 2 adds
``GET /orders`` (the order count).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "shop"
INSTALLER = Path(__file__).resolve().parent / "installer.py"


@dataclass(frozen=True)
class Release:
    """One release of the shop."""

    version: str
    """What ``GET /version`` answers."""
    features: tuple[str, ...] = ()
    """Optional behaviour switched on in this release."""

    @property
    def package_name(self) -> str:
        return f"shop-{self.version}.tar.gz"


RELEASE_1 = Release("1.0.0")
RELEASE_2 = Release("2.0.0", ("order-count",))
RELEASE_3 = Release("3.0.0", ("order-count",))
"""Installed by the demo's second session, which aborts from merge back to release 2."""


def _shipped_files() -> list[Path]:
    return sorted(
        p for p in SOURCE.rglob("*")
        if p.is_file() and p.name != "__init__.py" and "__pycache__" not in p.parts
    )


def build(release: Release, folder: Path) -> Path:
    """Write the release's tarball into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / release.package_name
    with tarfile.open(target, "w:gz") as tar:
        for path in _shipped_files():
            tar.add(path, arcname=path.relative_to(SOURCE).as_posix(), recursive=False)
        meta = json.dumps({"version": release.version, "features": list(release.features)},
                          indent=2).encode() + b"\n"
        info = tarfile.TarInfo("release.json")
        info.size = len(meta)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(meta))
    return target


def copy_installer(folder: Path) -> Path:
    """Place the installer beside the packages, as a vendor's download would ship it."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / INSTALLER.name
    shutil.copyfile(INSTALLER, target)
    target.chmod(0o755)
    return target
