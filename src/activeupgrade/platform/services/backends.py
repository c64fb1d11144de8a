"""The backend object of a service: the supervisor or systemd (``backend.backend_kind``)."""

from __future__ import annotations

from activeupgrade.config.model import ServiceBackend, ServiceSpec
from activeupgrade.instance import Instance
from activeupgrade.platform.services.backend import Backend, backend_kind
from activeupgrade.platform.services.supervisor import Supervisor
from activeupgrade.platform.services.systemd import Systemd
from activeupgrade.store.db import Store


def backend_for(spec: ServiceSpec, instance: Instance, store: Store) -> Backend:
    """The backend object for ``spec``."""
    if backend_kind(spec) is ServiceBackend.SYSTEMD:
        return Systemd(instance, store)
    return Supervisor(instance, store)
