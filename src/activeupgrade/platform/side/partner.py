"""The partner state of the Upgrade Side (SPEC §2.4), from its record and a live probe."""

from __future__ import annotations

from activeupgrade.instance import Instance
from activeupgrade.model.states import PartnerState
from activeupgrade.platform.side import namespace

_STATES = {
    "booting": PartnerState.OS_BOOTING,
    "rebooting": PartnerState.OS_REBOOTING,
    "shutting-down": PartnerState.OS_SHUTTING_DOWN,
    "shut-down": PartnerState.OS_SHUT_DOWN,
    "crashed": PartnerState.OS_CRASHED,
}


def partner_state(instance: Instance) -> tuple[PartnerState, str]:
    """The state and a detail (the missing isolation, or the last state when Hung)."""
    rec = namespace.read(instance)
    if not rec:
        return PartnerState.NONE, ""
    state = rec.get("state", "")
    if state in _STATES:
        return _STATES[state], ""
    if rec.get("mode") == namespace.DIRECTORY:
        if not namespace.probe(instance):
            return PartnerState.HUNG, PartnerState.OS_UP.value
        return PartnerState.OS_UP, "directory mode, no isolation: " + ", ".join(
            rec.get("missing", []))
    if not namespace.alive(int(rec.get("pid", 0))):
        return PartnerState.OS_CRASHED, "the Upgrade Side's init process died"
    if not namespace.probe(instance):
        return PartnerState.HUNG, PartnerState.OS_UP.value
    return PartnerState.OS_UP, f"namespaces, hostname {rec.get('hostname', '')}"
