"""The partner state of the Upgrade Side (filled in by the volumes/sides part)."""

from __future__ import annotations

from activeupgrade.instance import Instance
from activeupgrade.model.states import PartnerState


def partner_state(instance: Instance) -> tuple[PartnerState, str]:
    return PartnerState.NONE, ""
