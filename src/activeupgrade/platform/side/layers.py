"""The layers of the Upgrade Side's view, as data (planned by ``view.py``, mounted by
``build.py``). Kept free of heavy imports: the side's init and the entering helper use it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

POLICY_RC_D = "/usr/sbin/policy-rc.d"
POLICY_SCRIPT = """#!/bin/sh
# Upgrade Side of Active Upgrade: services are not started here (they start at merge,
# on the upgraded software). This file exists only inside the Upgrade Side.
echo "policy-rc.d: $* refused on the Upgrade Side" >&2
exit 101
"""
"""invoke-rc.d and deb-systemd-invoke ask this program before starting a service; 101
means "action forbidden by policy" (Debian's policy-rc.d interface)."""

APT_ARCHIVES = "/var/cache/apt/archives"
APT_LISTS = "/var/lib/apt/lists"


class Outside(StrEnum):
    """How the side sees what is not a volume."""

    COPY_ON_WRITE = "copy-on-write"
    """Writable; writes land on the side's scratch, are listed before merge, never kept."""
    READ_ONLY = "read-only"
    """Read-only: installers that write outside the volumes fail there."""


class LayerKind(StrEnum):
    """What one mount of the view is."""

    ROOT = "root"
    """The daemon's root filesystem."""
    OUTSIDE = "outside"
    """Another filesystem mounted on the host that is not a volume."""
    FILE = "file"
    """A file the host mounts on its own (e.g. ``/etc/resolv.conf``): read-only."""
    DEV = "dev"
    """A minimal /dev of the side's own (null, zero, random, tty, pts, shm)."""
    PROC = "proc"
    """The side's own /proc (its PID namespace); host-wide knobs read-only or hidden."""
    SYS = "sys"
    """A read-only sysfs of the side's network namespace."""
    FRESH = "fresh"
    """/run, /tmp, /var/tmp of the side's own, on its scratch."""
    SYSTEM = "system"
    """A system volume's Upgrade Side replica, read-write."""
    DATA = "data"
    """A data volume replaced by empty scratch (discarded)."""
    PACKAGES = "packages"
    """Packages staged on the Production Side, copy-on-write."""
    POLICY = "policy"
    """policy-rc.d refusing service starts."""
    NEEDED = "needed"
    """An installer or package listed in ``[upgrade_side] packages``, read-only at its own
    path (even where the side has its own folder, such as /tmp)."""
    MASK = "mask"
    """Hidden behind an empty read-only folder."""


@dataclass(frozen=True)
class Layer:
    """One mount of the Upgrade Side's view."""

    kind: LayerKind
    path: str
    """Where it shows inside the side."""
    why: str
    """What it is, in words (shown by ``au side show`` and the activity log)."""
    source: str = ""
    """The host folder or file it shows (as the daemon sees it)."""
    scratch: str = ""
    """Its folder on the side's scratch (overlay upper, data scratch, fresh folder)."""
    writable: bool = True
    """False: read-only."""
    owner: tuple[int, int, int] = (0, 0, 0o755)
    """uid, gid and mode a data scratch folder starts with (those of the live path)."""
    placeholder: str = ""
    """An empty file created on a replica so that a file can be mounted on it, removed
    when the side stops (policy-rc.d where /usr/sbin is a system volume)."""
    create: bool = False
    """The init creates the mount point in the view first (written to the overlay's upper
    folder, left out of the list of writes)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["owner"] = list(self.owner)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layer:
        d = dict(d)
        d["kind"] = LayerKind(d["kind"])
        d["owner"] = tuple(d.get("owner", (0, 0, 0o755)))
        return cls(**d)


@dataclass
class View:
    """The plan of the whole view, in mount order."""

    layers: list[Layer] = field(default_factory=list)

    def to_list(self) -> list[dict[str, Any]]:
        return [layer.to_dict() for layer in self.layers]

    @classmethod
    def from_list(cls, items: list[dict[str, Any]]) -> View:
        return cls([Layer.from_dict(d) for d in items])

    def of(self, *kinds: LayerKind) -> list[Layer]:
        return [la for la in self.layers if la.kind in kinds]
