"""How a test host is networked: the ``systemd-nspawn`` options of its network.

``PrivateNetwork()`` (the default): a network namespace of its own with only loopback;
nothing inside can reach any other address. ``NetnsPath(path)``: join a network namespace
that the test made itself (``ip netns add NAME`` → ``/run/netns/NAME``, with the veth or
bridge it wants), so that several hosts can reach each other, or be reached from the
machine, on addresses of namespaces the test owns. The test that made the namespace
removes it; the host only joins it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Network(Protocol):
    """A way to give a host its network."""

    def nspawn_options(self) -> list[str]:
        """The options added to ``systemd-nspawn``."""
        ...


@dataclass(frozen=True)
class PrivateNetwork:
    """Only loopback (``--private-network``)."""

    def nspawn_options(self) -> list[str]:
        return ["--private-network"]


@dataclass(frozen=True)
class NetnsPath:
    """An existing network namespace (``--network-namespace-path=PATH``)."""

    path: Path

    def nspawn_options(self) -> list[str]:
        if not self.path.exists():
            raise FileNotFoundError(f"no network namespace at {self.path}")
        return [f"--network-namespace-path={self.path}"]
