"""The systemd backend: services that are systemd units, driven through ``systemctl``.

Used when systemd is PID 1 and a service names its ``unit`` (or says ``backend =
"systemd"``). Same semantics as the supervisor: start waits for the health check, stop
waits until the unit is inactive, startup types are read with ``is-enabled`` and changed
with ``enable``/``disable`` only inside the Upgrade Side (the ``systemctl`` there acts on
the Upgrade Side's copy of the unit files). systemd owns the listening sockets here
(socket units), so it also keeps them across the switchover.
"""

from __future__ import annotations

import time

from activeupgrade import proc
from activeupgrade.config.model import ServiceSpec
from activeupgrade.errors import ProcessError, ServiceError
from activeupgrade.instance import Instance
from activeupgrade.model.states import Side
from activeupgrade.platform.actions.inside import enter
from activeupgrade.platform.services import health
from activeupgrade.platform.services.backend import (
    Check,
    ServiceStatus,
    StartResult,
    StopResult,
)
from activeupgrade.store.db import Store

SYSTEMCTL_TIMEOUT = 120.0
STARTUP = "startup"
"""Store namespace of startup types recorded for a non-isolated Upgrade Side."""


class Systemd:
    """The systemd backend."""

    kind = "systemd"

    def __init__(self, instance: Instance, store: Store) -> None:
        self.instance = instance
        self.store = store

    def _unit(self, spec: ServiceSpec) -> str:
        if not spec.unit:
            raise ServiceError(
                f"service {spec.name} uses systemd but names no unit",
                hint="Set `unit = \"NAME.service\"` in the service's configuration.",
            )
        return spec.unit

    def _systemctl(
        self, args: list[str], side: Side = Side.PRODUCTION, *, check: bool = True
    ) -> proc.Completed:
        prefix = enter(self.instance).prefix if side is Side.UPGRADE else []
        systemctl = proc.which("systemctl") or "systemctl"
        try:
            return proc.run([*prefix, systemctl, *args], timeout=SYSTEMCTL_TIMEOUT, check=check)
        except ProcessError as exc:
            raise ServiceError(
                f"systemctl {' '.join(args)} failed: {exc.message}",
                hint="See `journalctl -u UNIT` for the unit's own messages.",
            ) from exc

    def _active(self, unit: str) -> str:
        return self._systemctl(["is-active", unit], check=False).stdout.strip() or "unknown"

    def status(self, spec: ServiceSpec, *, probe: bool = False) -> ServiceStatus:
        unit = self._unit(spec)
        state = self._active(unit)
        out = ServiceStatus(
            name=spec.name, backend=self.kind, running=state in ("active", "reloading"),
            detail=f"unit {unit} is {state}", enabled=self.is_enabled(spec, Side.PRODUCTION),
        )
        if probe and out.running:
            out.healthy, out.detail = health.probe(spec.health)
        return out

    def start(self, spec: ServiceSpec, *, check: Check | None = None) -> StartResult:
        unit = self._unit(spec)
        began = time.time()
        already = self._active(unit) == "active"
        if not already:
            self._systemctl(["start", unit])

        def alive() -> tuple[bool, str]:
            state = self._active(unit)
            return state in ("active", "activating", "reloading"), f"unit is {state}"

        _, detail = health.wait_healthy(spec.health, spec.start_timeout, alive=alive, check=check)
        return StartResult(already, began, time.time(), 0, detail)

    def stop(self, spec: ServiceSpec) -> StopResult:
        unit = self._unit(spec)
        began = time.time()
        if self._active(unit) in ("inactive", "failed", "unknown"):
            return StopResult(True, began, began)
        # systemctl stop returns when the unit is inactive (its own stop timeout applies).
        self._systemctl(["stop", unit])
        return StopResult(False, began, time.time())

    def _isolated(self, side: Side) -> bool:
        return side is Side.UPGRADE and enter(self.instance).isolated

    def is_enabled(self, spec: ServiceSpec, side: Side) -> bool:
        if side is Side.UPGRADE and not self._isolated(side):
            doc = self.store.get_doc(STARTUP, f"{side.value}:{spec.name}")
            if isinstance(doc, dict):
                return bool(doc["enabled"])
            side = Side.PRODUCTION  # not isolated: it starts as a copy of Production's
        done = self._systemctl(["is-enabled", self._unit(spec)], side, check=False)
        return done.stdout.strip() in ("enabled", "enabled-runtime", "static", "alias")

    def set_enabled(self, spec: ServiceSpec, side: Side, enabled: bool) -> None:
        if side is Side.PRODUCTION:
            raise ServiceError("the Production Side's startup types are never changed")
        if not self._isolated(side):
            # A directory Upgrade Side shares the host's systemd: `systemctl disable` there
            # would change Production's. The startup type is recorded instead.
            self.store.put_doc(STARTUP, f"{side.value}:{spec.name}", {"enabled": enabled})
            return
        self._systemctl(["enable" if enabled else "disable", self._unit(spec)], side)

    def restore_after_switch(self, spec: ServiceSpec, enabled: bool) -> None:
        # After the switch the host's unit files are the upgraded replicas' (the Upgrade
        # Side's), so restoring acts on the host; the original replicas are untouched.
        self.store.delete_doc(STARTUP, f"{Side.UPGRADE.value}:{spec.name}")
        if self.is_enabled(spec, Side.PRODUCTION) != enabled:
            self._systemctl(["enable" if enabled else "disable", self._unit(spec)])
