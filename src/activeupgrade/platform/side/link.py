"""The private link between the host and the Upgrade Side: a veth pair and its addresses.

The addresses come from ``[upgrade_side] host_address``/``side_address`` when set. Unset,
each instance gets a /30 of its own in 169.254.1.0-169.254.99.255: the search starts at a
place derived from the instance folder (so an instance tends to keep its addresses) and
takes the first /30 no interface of the host uses, under a host-wide lock held until the
host end is configured, so that two instances (or two test suites) starting at once never
take the same one.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from activeupgrade import proc
from activeupgrade.config.model import Config
from activeupgrade.errors import SideError
from activeupgrade.instance import Instance

AUTO_FIRST = int(ipaddress.IPv4Address("169.254.1.0"))
AUTO_SLOTS = 99 * 64
"""/30 subnets in 169.254.1.0/24 … 169.254.99.0/24 (169.254.0.0/24, the cloud metadata
address 169.254.169.254 and the ranges test suites configure by hand stay clear)."""
LOCK = "\0activeupgrade-private-link"
"""An abstract Unix socket name (see ``held``)."""
LOCK_TIMEOUT = 60.0

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def link_names(instance: Instance) -> tuple[str, str]:
    """Names of the veth ends (host, side): ``au<6 hex>h`` / ``au<6 hex>s``, from the
    instance folder's path and identity (device and inode). Instances in chroots or
    containers that share this network namespace have the same path
    (``/var/lib/activeupgrade``) but never the same folder: named by the path alone, the
    second one's split deleted the first one's link and then failed with "File exists"."""
    try:
        st = os.stat(instance.home)
        identity = f"{st.st_dev}:{st.st_ino}:"
    except OSError:
        identity = ""  # no folder yet: nothing of ours can be on the host either
    tag = hashlib.sha1(f"{identity}{instance.home}".encode()).hexdigest()[:6]
    return f"au{tag}h", f"au{tag}s"


def host_addresses() -> list[tuple[str, Interface]]:
    """Every (interface, address) configured on this host (``ip -j addr``)."""
    ip = proc.which("ip")
    if ip is None:
        raise FileNotFoundError("the ip program (iproute2) is missing")
    done = proc.run([ip, "-j", "addr", "show"], timeout=10.0)
    found: list[tuple[str, Interface]] = []
    for link in json.loads(done.stdout or "[]"):
        for addr in link.get("addr_info", []):
            found.append((str(link.get("ifname", "")), ipaddress.ip_interface(
                f"{addr['local']}/{addr.get('prefixlen', 32)}")))
    return found


def configured(cfg: Config) -> bool:
    return bool(cfg.upgrade_side.host_address or cfg.upgrade_side.side_address)


def _slot(n: int) -> tuple[str, str]:
    base = AUTO_FIRST + 4 * (n % AUTO_SLOTS)
    return (f"{ipaddress.IPv4Address(base + 1)}/30", f"{ipaddress.IPv4Address(base + 2)}/30")


def _clash(subnet: ipaddress.IPv4Network, used: list[tuple[str, Interface]],
           own: str) -> bool:
    return any(ifname != own and addr.version == 4 and addr.network.overlaps(subnet)
               and not addr.ip.is_loopback for ifname, addr in used)


def start_of(instance: Instance) -> int:
    """Where the search for a free /30 starts for ``instance`` (from its folder)."""
    return int(hashlib.sha1(str(instance.home).encode()).hexdigest()[:8], 16)


def choose(instance: Instance, used: list[tuple[str, Interface]], start: int | None = None
           ) -> tuple[str, str]:
    """The first free /30 from ``start`` (default: this instance's starting point); no lock
    is taken here (see ``held``)."""
    own = link_names(instance)[0]
    start = start_of(instance) if start is None else start
    for i in range(AUTO_SLOTS):
        host, side = _slot(start + i)
        if not _clash(ipaddress.ip_interface(host).network, used, own):  # type: ignore[arg-type]
            return host, side
    raise SideError("no free /30 for the private link in 169.254.1.0-169.254.99.255",
                    hint="Set [upgrade_side] host_address and side_address to free "
                    "addresses of one small subnet.")


def addresses(instance: Instance, cfg: Config) -> tuple[str, str]:
    """The addresses the link would use now (configured, or chosen without a lock)."""
    if configured(cfg):
        return cfg.upgrade_side.host_address, cfg.upgrade_side.side_address
    return choose(instance, host_addresses())


@contextmanager
def held(timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """The lock under which a free /30 is chosen and its host end configured: a name in
    the abstract Unix socket namespace, which belongs to the network namespace, so it is
    shared by exactly those who share the addresses (instances in chroots included) and is
    given back by the kernel when its holder dies."""
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                lock.bind(LOCK)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                if time.monotonic() > deadline:
                    raise SideError("another instance has been choosing its private link "
                                    f"addresses for {timeout:.0f}s",
                                    hint="Try again; or set [upgrade_side] host_address and "
                                    "side_address.") from exc
                time.sleep(0.02)
        yield
    finally:
        lock.close()


def create(instance: Instance, cfg: Config, pid: int) -> dict[str, str]:
    """The veth pair, one end moved into the network namespace of ``pid``, both ends up
    with their addresses; returns what the record keeps."""
    host, side = link_names(instance)
    ip = proc.which("ip") or "ip"
    proc.run([ip, "link", "del", host], check=False, timeout=10)
    with held():
        host_addr, side_addr = addresses(instance, cfg)
        _batch([ip], [f"link add {host} type veth peer name {side}",
                      f"addr add {host_addr} dev {host}",
                      f"link set {side} netns {pid}",
                      f"link set {host} up"])
    _batch([proc.which("nsenter") or "nsenter", "-t", str(pid), "-n", ip],
           ["link set lo up", f"addr add {side_addr} dev {side}", f"link set {side} up"])
    return {"host_link": host, "side_link": side, "host_address": host_addr,
            "side_address": side_addr}


def _batch(ip: list[str], commands: list[str]) -> None:
    """``ip`` commands in one process (``ip -batch``, read from its input; every word is
    a name or an address made here, none has a space): it stops at the first that fails,
    and the error names it."""
    proc.run([*ip, "-batch", "-"], input_bytes="".join(f"{c}\n" for c in commands).encode(),
             timeout=10)


def remove(instance: Instance, host_link: str = "") -> None:
    """Delete the host end (the pair goes with it): ``host_link`` as the record names it,
    else this instance's name now."""
    proc.run([proc.which("ip") or "ip", "link", "del", host_link or link_names(instance)[0]],
             check=False, timeout=10)
