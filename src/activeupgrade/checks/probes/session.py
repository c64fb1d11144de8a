"""Session checks: no other session in progress; the Upgrade Side is up."""

from __future__ import annotations

from activeupgrade.checks.probe import CheckEnv, Verdict
from activeupgrade.engine.status import load_status
from activeupgrade.model.states import PartnerState, UpgradeState
from activeupgrade.platform.side import partner


def no_other_session(env: CheckEnv) -> Verdict:
    status = load_status(env.store)
    if status.upgrade_state is not UpgradeState.IDLE and status.session != env.session:
        return Verdict(False, f"session {status.session} is in progress "
                       f"({status.upgrade_state}, {status.operational_state})")
    rows = env.store.query("SELECT id, started FROM sessions WHERE ended IS NULL")
    others = [str(r["id"]) for r in rows if str(r["id"]) != env.session]
    if others:
        return Verdict(False, "unfinished session(s) on record: " + ", ".join(others))
    if env.session:
        return Verdict(True, f"this is the only session ({env.session})")
    return Verdict(True, "no session in progress")


def upgrade_side_up(env: CheckEnv) -> Verdict:
    state, detail = partner.partner_state(env.instance)
    if state is PartnerState.OS_UP:
        return Verdict(True, "the Upgrade Side is up" + (f" ({detail})" if detail else ""))
    shown = f"Hung: {detail}" if state is PartnerState.HUNG else state.value
    return Verdict(False, f"the Upgrade Side is {shown}", details={"partner": state.value})
