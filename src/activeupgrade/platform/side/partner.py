"""The partner state of the Upgrade Side (SPEC §2.4), from its record and a live probe."""

from __future__ import annotations

from activeupgrade.instance import Instance
from activeupgrade.model.states import PartnerState
from activeupgrade.platform.side import namespace

_SETTLED = {namespace.SideState(s) for s in namespace.SideState} - {namespace.SideState.UP}
"""Record states shown as they are; Up is probed (Hung when it does not answer)."""


def partner_state(instance: Instance) -> tuple[PartnerState, str]:
    """The state and a detail (the missing isolation, or the last state when Hung)."""
    rec = namespace.read(instance)
    if not rec:
        return PartnerState.NONE, ""
    state = rec.get("state", "")
    if state in _SETTLED:
        return namespace.SideState(state).partner, ""
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
