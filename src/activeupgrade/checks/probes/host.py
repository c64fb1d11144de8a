"""Host checks: privileges, namespace support, private link addresses."""

from __future__ import annotations

import ipaddress
import json
import os

from activeupgrade import proc
from activeupgrade.checks.catalogue import CheckSeverity
from activeupgrade.checks.runner import CheckEnv, Verdict
from activeupgrade.instance import is_root

NAMESPACES = ("mnt", "net", "pid", "uts")


def _isolation(env: CheckEnv) -> str:
    return env.config.upgrade_side.isolation


def _uses_namespaces(env: CheckEnv) -> bool:
    iso = _isolation(env)
    return iso == "namespaces" or (iso == "auto" and is_root())


def privileges(env: CheckEnv) -> Verdict:
    if is_root():
        return Verdict(True, "running as root: the Upgrade Side is isolated in namespaces")
    required = _isolation(env) == "namespaces"
    return Verdict(
        False, f"not running as root (uid {os.geteuid()}): the Upgrade Side will be a working "
        "directory without mount, network or PID isolation",
        severity=CheckSeverity.ERROR if required else CheckSeverity.WARNING,
    )


def namespaces(env: CheckEnv) -> Verdict:
    if _isolation(env) == "directory":
        return Verdict(True, "not needed (isolation = \"directory\")")
    missing = [ns for ns in NAMESPACES if not os.path.exists(f"/proc/self/ns/{ns}")]
    if proc.which("unshare") is None:
        missing.append("the unshare program")
    if proc.which("nsenter") is None:
        missing.append("the nsenter program")
    if missing:
        return Verdict(False, "missing namespace support: " + ", ".join(missing),
                       severity=None if _isolation(env) == "namespaces"
                       else CheckSeverity.WARNING)
    return Verdict(True, "mount, network, PID and UTS namespaces are available")


def host_addresses() -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """Every address configured on this host's interfaces (``ip -j addr``)."""
    ip = proc.which("ip")
    if ip is None:
        raise FileNotFoundError("the ip program (iproute2) is missing")
    done = proc.run([ip, "-j", "addr", "show"], timeout=10.0)
    found = []
    for link in json.loads(done.stdout or "[]"):
        for addr in link.get("addr_info", []):
            found.append(ipaddress.ip_interface(f"{addr['local']}/{addr.get('prefixlen', 32)}"))
    return found


def link_addresses(env: CheckEnv) -> Verdict:
    if not _uses_namespaces(env):
        return Verdict(True, "no private link (the Upgrade Side is not a network namespace)")
    side = env.config.upgrade_side
    try:
        host = ipaddress.ip_interface(side.host_address)
        peer = ipaddress.ip_interface(side.side_address)
    except ValueError as exc:
        return Verdict(False, f"invalid private link address: {exc}")
    if host.ip == peer.ip or host.network != peer.network:
        return Verdict(False, f"{host} and {peer} are not two addresses of one subnet")
    try:
        existing = host_addresses()
    except (FileNotFoundError, ValueError) as exc:
        return Verdict(False, f"cannot list this host's addresses: {exc}")
    clashes = []
    for addr in existing:
        if addr.ip in (host.ip, peer.ip):
            clashes.append(f"{addr.ip} is already used on this host")
        elif addr.version == host.version and addr.network.overlaps(host.network) and \
                not addr.ip.is_loopback:
            clashes.append(f"{addr} overlaps the link's subnet {host.network}")
    if clashes:
        return Verdict(False, "; ".join(clashes), details={"clashes": clashes})
    return Verdict(True, f"{host} ↔ {peer} are free", details={"checked": len(existing)})
