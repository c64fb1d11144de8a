"""The systemd backend: services that are systemd units, driven through ``systemctl``.

Used when systemd is PID 1 and a service names its ``unit`` (or says ``backend =
"systemd"``). Same semantics as the supervisor: start waits for the health check, stop
waits until the unit is inactive. systemd owns the listening sockets here (socket units),
so it also keeps them across the switchover.

Startup types are read with ``is-enabled`` and changed with ``enable``/``disable`` only on
the Upgrade Side, and only when its unit folder (``/etc/systemd/system``, where the links
that enable a unit live) lies on a system volume: ``systemctl`` runs there with
``SYSTEMD_OFFLINE=1`` so that it edits the unit files it sees (the Upgrade Side's replica)
instead of asking the host's systemd, which would change Production's (and which refuses
a client from another PID namespace anyway: "Failed to connect to bus"). Otherwise (a
directory Upgrade Side, or a unit folder that is not on a volume and so is Production's
own) the Upgrade Side's startup type is recorded instead of changed.

Before a unit is started, systemd loads its files again (``daemon-reload``) when they may
have changed under it: it says so (``NeedDaemonReload``), or a file of the unit lies on a
volume, whose live path merge and abort switch to another replica (systemd notices only a
file that became newer, not one switched back to an older copy at abort).
"""

from __future__ import annotations

import time

from activeupgrade import proc
from activeupgrade.config.model import ServiceSpec, VolumeRole
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
from activeupgrade.platform.volumes import registry
from activeupgrade.store.db import Store

SYSTEMCTL_TIMEOUT = 120.0
STARTUP = "startup"
"""Store namespace of startup types recorded for the Upgrade Side where they cannot be
changed there (see the module docstring)."""
UNIT_FOLDER = "/etc/systemd/system"
"""Where ``systemctl enable`` puts the links that enable a unit (system scope)."""
ENABLED = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
"""``is-enabled`` answers that mean the unit starts (or is pulled in) when its side boots."""
DISABLED = ("disabled", "masked", "masked-runtime", "linked", "linked-runtime")


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
        prefix: list[str] = []
        env = proc.base_env()
        if side is Side.UPGRADE:
            prefix = enter(self.instance).prefix
            env["SYSTEMD_OFFLINE"] = "1"  # the unit files it sees, not the host's systemd
        systemctl = proc.which("systemctl") or "systemctl"
        try:
            return proc.run([*prefix, systemctl, *args], env=env, timeout=SYSTEMCTL_TIMEOUT,
                            check=check)
        except ProcessError as exc:
            raise ServiceError(
                f"systemctl {' '.join(args)} failed: {exc.message}",
                hint="See `journalctl -u UNIT` for the unit's own messages.",
            ) from exc

    def _active(self, unit: str) -> str:
        return self._systemctl(["is-active", unit], check=False).stdout.strip() or "unknown"

    def _main_pid(self, unit: str) -> int:
        out = self._systemctl(["show", "--property=MainPID", "--value", unit], check=False)
        return int(out.stdout.strip()) if out.stdout.strip().isdigit() else 0

    def _stale(self, unit: str) -> bool:
        """Whether systemd may hold an outdated copy of ``unit``'s files: it says so, or a
        file of the unit lies on a volume (its live path may have been switched to another
        replica, and systemd only notices files that became *newer*, not one switched back
        to an older copy)."""
        out = self._systemctl(["show", "--property=NeedDaemonReload,FragmentPath,DropInPaths",
                               unit], check=False).stdout
        props = dict(line.partition("=")[::2] for line in out.splitlines())
        if props.get("NeedDaemonReload") == "yes":
            return True
        files = [props.get("FragmentPath", ""), *props.get("DropInPaths", "").split()]
        volumes = [v.path.rstrip("/") + "/" for v in registry.all_volumes(self.store)]
        return any(f.startswith(v) for f in files if f for v in volumes)

    def status(self, spec: ServiceSpec, *, probe: bool = False) -> ServiceStatus:
        unit = self._unit(spec)
        state = self._active(unit)
        try:
            enabled = self.is_enabled(spec, Side.PRODUCTION)
        except ServiceError:
            enabled = False  # no such unit file: nothing starts it at boot
        out = ServiceStatus(
            name=spec.name, backend=self.kind, running=state in ("active", "reloading"),
            pid=self._main_pid(unit), detail=f"unit {unit} is {state}", enabled=enabled,
        )
        if probe and out.running:
            out.healthy, out.detail = health.probe(spec.health)
        return out

    def start(self, spec: ServiceSpec, *, check: Check | None = None) -> StartResult:
        unit = self._unit(spec)
        began = time.time()
        already = self._active(unit) == "active"
        if not already:
            if self._stale(unit):
                self._systemctl(["daemon-reload"])
            self._systemctl(["start", unit])

        def alive() -> tuple[bool, str]:
            state = self._active(unit)
            return state in ("active", "activating", "reloading"), f"unit is {state}"

        _, detail = health.wait_healthy(spec.health, spec.start_timeout, alive=alive, check=check)
        return StartResult(already, began, time.time(), self._main_pid(unit), detail)

    def stop(self, spec: ServiceSpec) -> StopResult:
        unit = self._unit(spec)
        began = time.time()
        if self._active(unit) in ("inactive", "failed", "unknown"):
            return StopResult(True, began, began)
        # systemctl stop returns when the unit is inactive (its own stop timeout applies).
        self._systemctl(["stop", unit])
        return StopResult(False, began, time.time())

    def _own_unit_folder(self) -> bool:
        """Whether the Upgrade Side has a unit folder of its own: it is isolated (its own
        mount namespace) and ``/etc/systemd/system`` lies on a system volume of the
        session (so the Upgrade Side sees its replica there, not Production's folder)."""
        if not enter(self.instance).isolated:
            return False
        for vol in registry.all_volumes(self.store):
            inside = UNIT_FOLDER == vol.path or UNIT_FOLDER.startswith(vol.path.rstrip("/") + "/")
            if inside and vol.role is VolumeRole.SYSTEM and vol.session.get("upgrade"):
                return True
        return False

    def is_enabled(self, spec: ServiceSpec, side: Side) -> bool:
        if side is Side.UPGRADE and not self._own_unit_folder():
            doc = self.store.get_doc(STARTUP, f"{side.value}:{spec.name}")
            if isinstance(doc, dict):
                return bool(doc["enabled"])
            side = Side.PRODUCTION  # it starts as a copy of Production's
        unit = self._unit(spec)
        done = self._systemctl(["is-enabled", unit], side, check=False)
        state = done.stdout.strip().splitlines()[-1:] or [""]
        if state[0] in ENABLED:
            return True
        if state[0] in DISABLED:
            return False
        raise ServiceError(
            f"cannot read the startup type of {unit}"
            f"{' on the Upgrade Side' if side is Side.UPGRADE else ''}: {done.explain()}",
            hint="`systemctl is-enabled UNIT` must answer; check the unit's name.",
        )

    def set_enabled(self, spec: ServiceSpec, side: Side, enabled: bool) -> None:
        if side is Side.PRODUCTION:
            raise ServiceError("the Production Side's startup types are never changed")
        if not self._own_unit_folder():
            # `systemctl disable` here would change Production's unit folder: recorded.
            self.store.put_doc(STARTUP, f"{side.value}:{spec.name}", {"enabled": enabled})
            return
        self._systemctl(["enable" if enabled else "disable", self._unit(spec)], side)

    def restore_after_switch(self, spec: ServiceSpec, enabled: bool) -> None:
        # After the switch the host's unit files are the upgraded replicas' (the Upgrade
        # Side's), so restoring acts on the host; the original replicas are untouched.
        self.store.delete_doc(STARTUP, f"{Side.UPGRADE.value}:{spec.name}")
        if self.is_enabled(spec, Side.PRODUCTION) != enabled:
            self._systemctl(["enable" if enabled else "disable", self._unit(spec)])
