"""The fleet's network: a controller namespace with a veth link to each host's namespace.

``Fleet network`` makes ``ip netns add`` namespaces that the test owns: one for the
controller (where ``ansible-playbook`` runs, so its SSH traffic never leaves namespaces
the test made) and one per host, joined by ``systemd-nspawn
--network-namespace-path=/run/netns/NAME`` (``tests.host.NetnsPath``). Host ``i`` is
``10.248.i.2/24`` on its ``eth0``; the controller is ``10.248.i.1`` on its end of the link.

The addresses are the same in every run (each run's are in namespaces of its own); the
namespaces' names are not: ``aufl`` + this process's pid + a random part, so that two runs
never share one, also when they see different pid namespaces.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from activeupgrade import proc
from tests.host import NetnsPath


def ip(*args: str) -> None:
    proc.run(["ip", *args], timeout=30)


@dataclass
class FleetNetwork:
    """The namespaces and links of ``size`` hosts and their controller."""

    size: int
    prefix: str = field(default_factory=lambda: f"aufl{os.getpid()}-{secrets.token_hex(3)}")
    made: list[str] = field(default_factory=list)

    @property
    def controller(self) -> str:
        return f"{self.prefix}-c"

    def host_netns(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    def address(self, index: int) -> str:
        """Host ``index``'s address (1-based), as Ansible reaches it."""
        return f"10.248.{index}.2"

    def for_host(self, index: int) -> NetnsPath:
        return NetnsPath(Path("/run/netns") / self.host_netns(index))

    def create(self) -> None:
        ip("netns", "add", self.controller)
        self.made.append(self.controller)
        ip("-n", self.controller, "link", "set", "lo", "up")
        for i in range(1, self.size + 1):
            ns = self.host_netns(i)
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", self.controller, "link", "add", f"h{i}", "type", "veth", "peer", "name",
               "eth0", "netns", ns)
            ip("-n", self.controller, "addr", "add", f"10.248.{i}.1/24", "dev", f"h{i}")
            ip("-n", self.controller, "link", "set", f"h{i}", "up")
            ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def remove(self) -> None:
        """Remove the namespaces (their veth pairs go with them)."""
        for ns in reversed(self.made):
            proc.run(["ip", "netns", "del", ns], timeout=30, check=False)
        self.made.clear()

    def in_controller(self, argv: list[str]) -> list[str]:
        """``argv`` run in the controller's namespace."""
        return ["ip", "netns", "exec", self.controller, *argv]
