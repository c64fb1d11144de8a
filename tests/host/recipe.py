"""What a test host is built from: a recipe of Debian packages.

A ``Recipe`` names the packages of the root (``mmdebstrap`` installs them from Debian's
bookworm, bookworm-updates and bookworm-security), optionally at an older version
(``"nginx=1.22.1-9+deb12u9"``: the version in bookworm while bookworm-security has a
newer one), and the packages whose newest version goes into the host's local apt
repository of updates (so that ``apt-get --download-only upgrade`` inside the host, with no
network, finds them). Its ``key`` (a hash of everything that shapes the root) names the
cached root: two recipes with the same packages share one cache entry.

``apt-cache madison NAME`` on the build machine lists the versions Debian serves; a
version that Debian no longer serves makes the build fail with apt's message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
"""The apt sources of the build (the same as the build machine's)."""

FORMAT = 2
"""Bumped when the way a root is prepared changes (invalidates every cached root)."""

BASE_PACKAGES = (
    # A booted systemd host that an operator can log in to.
    "systemd", "systemd-sysv", "dbus", "apt", "ca-certificates", "mount", "util-linux",
    "procps", "iproute2",
    # What `au` needs at run time (scripts/bootstrap.sh's Debian packages, less the
    # browser the tests use): its interpreter and the programs it runs.
    "python3", "python3-venv", "rsync", "btrfs-progs", "xfsprogs", "coreutils",
)


@dataclass(frozen=True)
class Recipe:
    """The packages of one kind of test host."""

    name: str
    """A short name for humans (``python -m tests.host build --recipe NAME``)."""
    extra: tuple[str, ...] = ()
    """Packages beyond ``BASE_PACKAGES``; ``"NAME=VERSION"`` asks for that version (give
    the same version for the packages that depend on each other exactly, e.g. ``nginx``
    and ``nginx-common``)."""
    updates: tuple[str, ...] = ()
    """Packages whose newest version Debian serves is put into the host's local apt
    repository (``/srv/au-updates``), to be installed there with no network."""
    base: tuple[str, ...] = field(default=BASE_PACKAGES)
    """The base set (rarely changed)."""

    def packages(self) -> list[str]:
        """Everything ``mmdebstrap --include`` is given."""
        pinned = {p.split("=", 1)[0] for p in self.extra}
        return [p for p in self.base if p not in pinned] + list(self.extra)

    def key(self) -> str:
        """A hash of everything that shapes the root (the cache entry's name)."""
        doc = {"format": FORMAT, "suite": SUITE, "mirrors": MIRRORS,
               "packages": sorted(self.packages()), "updates": sorted(self.updates)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


BASE = Recipe("base")
"""systemd, Python and the tool's run-time programs."""

NGINX = Recipe(
    "nginx",
    extra=("nginx=1.22.1-9+deb12u9", "nginx-common=1.22.1-9+deb12u9"),
    updates=("nginx", "nginx-common"),
)
"""Debian's nginx at bookworm's version; bookworm-security's in the local repository."""

SERVICES = Recipe(
    "services",
    extra=("nginx=1.22.1-9+deb12u9", "nginx-common=1.22.1-9+deb12u9",
           "redis-server=5:7.0.15-1~deb12u7", "redis-tools=5:7.0.15-1~deb12u7",
           "postgresql-15=15.18-0+deb12u1", "postgresql-client-15=15.18-0+deb12u1",
           "libpq5=15.18-0+deb12u1"),
    updates=("nginx", "nginx-common", "redis-server", "redis-tools", "postgresql-15",
             "postgresql-client-15", "libpq5"),
)
"""nginx, Redis and PostgreSQL 15 at bookworm's versions; their security updates in the
local repository."""

PYTHON_PACKAGES = ("python3.11", "python3.11-minimal", "python3.11-venv",
                   "libpython3.11-minimal", "libpython3.11-stdlib")
PYTHON = Recipe(
    "python",
    extra=tuple(f"{p}=3.11.2-6+deb12u8" for p in PYTHON_PACKAGES),
    updates=PYTHON_PACKAGES,
)
"""The host's own Python (the tool's interpreter) at bookworm's version; the security update
in the local repository: an upgrade of the interpreter the tool runs on."""

FLEET = Recipe(
    "fleet",
    extra=(*NGINX.extra, "openssh-server"),
    updates=NGINX.updates,
)
"""The nginx host with an SSH server: one host of a fleet that Ansible reaches over SSH
(``tests/fleet``)."""

RECIPES = {r.name: r for r in (BASE, NGINX, SERVICES, PYTHON, FLEET)}
"""The recipes ``python -m tests.host`` knows by name."""
