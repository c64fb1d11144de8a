"""Host checks: privileges, namespace support, private link addresses."""

from __future__ import annotations

import ipaddress
import os
import re
import time

from activeupgrade import proc
from activeupgrade.checks.catalogue import CheckSeverity
from activeupgrade.checks.probe import CheckEnv, Verdict
from activeupgrade.errors import AUError
from activeupgrade.instance import is_root
from activeupgrade.platform.side import link, packages

NAMESPACES = ("mnt", "net", "pid", "uts")
OTHER_INSTANCE_LINK = re.compile(r"^au[0-9a-f]{6}h$")
"""Host end of another instance's private link (``side.link.link_names``)."""


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


host_addresses = link.host_addresses


def link_addresses(env: CheckEnv) -> Verdict:
    if not _uses_namespaces(env):
        return Verdict(True, "no private link (the Upgrade Side is not a network namespace)")
    side = env.config.upgrade_side
    if not link.configured(env.config):
        try:
            host_addr, side_addr = link.addresses(env.instance, env.config)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            return Verdict(False, f"cannot list this host's addresses: {exc}")
        except AUError as exc:
            return Verdict(False, exc.message)
        return Verdict(True, f"chosen for this instance when the Upgrade Side starts: "
                       f"{host_addr} ↔ {side_addr} (free now)",
                       details={"host_address": host_addr, "side_address": side_addr})
    try:
        host = ipaddress.ip_interface(side.host_address)
        peer = ipaddress.ip_interface(side.side_address)
    except ValueError as exc:
        return Verdict(False, f"invalid private link address: {exc}")
    if host.ip == peer.ip or host.network != peer.network:
        return Verdict(False, f"{host} and {peer} are not two addresses of one subnet")
    try:
        existing = host_addresses()
    except (FileNotFoundError, ValueError, KeyError) as exc:
        return Verdict(False, f"cannot list this host's addresses: {exc}")
    own = link.link_names(env.instance)[0]
    clashes: list[str] = []
    shared: list[str] = []
    for ifname, addr in existing:
        if ifname == own:
            continue  # our own link (left by a crash) is rebuilt by the split
        if addr.ip in (host.ip, peer.ip):
            problem = f"{addr.ip} is already used on {ifname}"
        elif addr.version == host.version and addr.network.overlaps(host.network) and \
                not addr.ip.is_loopback:
            problem = f"{addr} on {ifname} overlaps the link's subnet {host.network}"
        else:
            continue
        (shared if OTHER_INSTANCE_LINK.match(ifname) else clashes).append(problem)
    if clashes:
        return Verdict(False, "; ".join(clashes + shared), details={"clashes": clashes})
    if shared:
        return Verdict(False, "; ".join(shared) + " (the private link of another Active "
                       "Upgrade instance on this host)", severity=CheckSeverity.WARNING,
                       details={"shared": shared})
    return Verdict(True, f"{host} ↔ {peer} are free", details={"checked": len(existing)})


def packages_staged(env: CheckEnv) -> Verdict:
    if not _uses_namespaces(env):
        return Verdict(True, "not needed (the Upgrade Side is not isolated)")
    if proc.which("apt-get") is None:
        return Verdict(True, "not needed (no apt on this host)")
    found = packages.current(env.instance)
    if not found.staged:
        return Verdict(False, "nothing is staged for the Upgrade Side's apt: it has no "
                       "network, so apt-get there can install only what is already here")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(found.at))
    what = ", ".join(found.names) if found.names else "the upgrade"
    return Verdict(True, f"{len(found.packages)} package(s) staged for {what} at {when} "
                   f"(lists {found.lists})", details=found.to_dict())
