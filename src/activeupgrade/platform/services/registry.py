"""The services an operator can drive: the configured ones plus any keeper still recorded.

Shared by the API (``au service …``) and the steps: one place that turns a name into a
spec and a backend, and that lists what ``au service list`` shows.
"""

from __future__ import annotations

from typing import Any

from activeupgrade.config.model import Config, ServiceSpec
from activeupgrade.errors import ServiceError
from activeupgrade.instance import Instance
from activeupgrade.platform.services.backend import backend_kind
from activeupgrade.platform.services.backends import backend_for
from activeupgrade.platform.services.supervisor import NAMESPACE
from activeupgrade.store.db import Store


def find(cfg: Config, name: str) -> ServiceSpec:
    for spec in cfg.services:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in cfg.services) or "none"
    raise ServiceError(
        f"no service named {name!r} in the configuration (configured: {known})",
        hint="`au service list` shows the services; `au config show` the configuration.",
    )


def describe(cfg: Config, instance: Instance, store: Store, *, probe: bool) -> list[
    dict[str, Any]
]:
    """Status of every configured service, then of keepers no longer configured."""
    out: list[dict[str, Any]] = []
    for spec in cfg.services:
        out.append(status(spec, instance, store, probe=probe))
    configured = {s.name for s in cfg.services}
    for name in store.docs(NAMESPACE):
        if name not in configured:
            row = status(ServiceSpec(name=name), instance, store, probe=False)
            row["detail"] += " (not in the configuration)"
            out.append(row)
    return out


def status(spec: ServiceSpec, instance: Instance, store: Store, *, probe: bool) -> dict[
    str, Any
]:
    try:
        st = backend_for(spec, instance, store).status(spec, probe=probe).to_dict()
    except ServiceError as exc:
        st = {"name": spec.name, "backend": backend_kind(spec).value, "running": False,
              "detail": exc.message}
    st["command"] = list(spec.command)
    st["unit"] = spec.unit
    st["listen"] = [s.listen for s in spec.sockets]
    st["handover"] = spec.handover.value
    st["switchover"] = spec.switchover.value
    st["hold_limit"] = spec.hold_limit
    st["upstreams"] = {s.name: s.upstream for s in spec.sockets if s.upstream}
    st["health"] = spec.health.kind.value
    return st
