"""Which steps each request runs, in which order (SPEC §3), composed from the parts.

Each part exposes step builders; this module is the one place that orders them, so the
whole session reads top to bottom here. Advanced custom actions run at every request,
ordered early → default → late among themselves: early before the request's own work,
default and late after it.
"""

from __future__ import annotations

from dataclasses import replace

from activeupgrade.checks import steps as checks
from activeupgrade.config.model import Config, ControlType, Timing
from activeupgrade.engine import confirm
from activeupgrade.engine.steps import Step
from activeupgrade.model.states import Request, Side
from activeupgrade.platform import backup
from activeupgrade.platform.actions import steps as actions
from activeupgrade.platform.services import steps as services
from activeupgrade.platform.side import steps as side
from activeupgrade.platform.volumes import checkpoint
from activeupgrade.platform.volumes import steps as volumes
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.session import usage

EARLY = (Timing.EARLY,)
LATER = (Timing.DEFAULT, Timing.LATE)


def _sides(request: Request) -> tuple[Side, ...]:
    """Sides the advanced actions of ``request`` run on."""
    if request in (Request.EXECUTE_SPLIT, Request.PREPARE_MERGE):
        return (Side.PRODUCTION, Side.UPGRADE)
    return (Side.PRODUCTION,)


def _phase(sub_request: Request, *groups: list[Step]) -> list[Step]:
    """Steps of an application-control (Start, Stop) or backup (Backup) phase: the status
    and the actions they run show the phase as the request being executed."""
    return [replace(st, sub_request=sub_request) for group in groups for st in group]


def _advanced(
    cfg: Config, request: Request, timings: tuple[Timing, ...], sides: tuple[Side, ...]
) -> list[Step]:
    return [st for sd in sides for st in actions.advanced(cfg, request, sd, timings)]


def request_steps(request: Request, cfg: Config, sync: SyncState | None = None) -> list[Step]:
    """The ordered steps of ``request`` for configuration ``cfg``; ``sync``: the daemon's
    volume sync state, handed to the volume steps."""
    sides = _sides(request)
    early = _advanced(cfg, request, EARLY, sides)
    later = _advanced(cfg, request, LATER, sides)
    match request:
        case Request.CHECK_READINESS:
            own = checks.on_demand(cfg, sync)
        case Request.PREPARE_SPLIT:
            own = [*checks.final(cfg, sync), *volumes.prepare_split(cfg, sync)]
        case Request.EXECUTE_SPLIT:
            # The Upgrade Side exists only once side.start ran: its early actions follow it.
            early = _advanced(cfg, request, EARLY, (Side.PRODUCTION,))
            own = [
                *volumes.execute_split(cfg, sync),
                *side.start(cfg, sync),
                *_advanced(cfg, request, EARLY, (Side.UPGRADE,)),
                *_phase(Request.STOP,
                        services.disable_on_upgrade_side(cfg),
                        actions.control(cfg, ControlType.STOP_APPLICATION, Side.UPGRADE, request)),
            ]
        case Request.PREPARE_MERGE:
            own = [*checks.upgrade_side(cfg), *volumes.prepare_merge(cfg, sync),
                   *checkpoint.prepare_merge(cfg, sync), *side.prepare_merge(cfg),
                   *usage.steps(cfg)]
        case Request.EXECUTE_MERGE:
            # Between the stop of the services and their start only what must happen
            # there: the data checkpoints and the switch. The Upgrade Side is shut down
            # before (after the stop actions, which still see it, as the original's saw the
            # host split); the last report of Production's changes and the backup read the
            # old replicas after the start: nothing writes them once the live paths show
            # the upgraded ones.
            own = [
                *_phase(Request.STOP,
                        actions.control(cfg, ControlType.STOP_APPLICATION, Side.PRODUCTION,
                                        request)),
                *side.stop(cfg),
                *_phase(Request.STOP, services.stop_production(cfg)),
                # The applications are stopped (every service is stop-start when a volume
                # has a checkpoint): the data is quiescent.
                *checkpoint.execute_merge(cfg, sync),
                *volumes.execute_merge(cfg, sync),
                # The startup type (what starts at boot) is restored once the application
                # serves: the start does not depend on it (systemd reloads the unit files
                # before a start by itself).
                *_phase(Request.START,
                        services.start_upgraded(cfg),
                        services.restore_startup(cfg),
                        actions.control(cfg, ControlType.START_APPLICATION, Side.PRODUCTION,
                                        request)),
                *volumes.report_production_changes(cfg, sync),
                *_phase(Request.BACKUP, backup.save(cfg),
                        actions.control(cfg, ControlType.BACKUP, Side.PRODUCTION, request)),
            ]
        case Request.CONFIRM:
            own = confirm.confirm(cfg)
        case Request.COMMIT:
            own = [*confirm.commit(cfg), *checkpoint.commit(cfg, sync),
                   *volumes.commit(cfg, sync)]
        case Request.ABORT:
            # Application actions here run only when the applications move back (abort
            # from merge); the action steps decide from the recorded facts.
            own = [
                *side.stop(cfg),
                *_phase(Request.STOP,
                        actions.control(cfg, ControlType.STOP_APPLICATION, Side.PRODUCTION,
                                        request),
                        services.stop_for_abort(cfg)),
                *volumes.abort_switch_back(cfg, sync),
                # With the applications stopped: the writes since the checkpoints saved
                # aside, then the data volumes shown at their checkpoints.
                *checkpoint.abort(cfg, sync),
                *_phase(Request.START,
                        services.start_for_abort(cfg),
                        actions.control(cfg, ControlType.START_APPLICATION, Side.PRODUCTION,
                                        request)),
                *volumes.abort_resync(cfg, sync),
            ]
        case Request.FINISH:
            own = [*side.cleanup(cfg), *volumes.finish(cfg, sync)]
        case _:
            own = []
    if request is Request.EXECUTE_MERGE:
        # Last: the window opens once the applications run upgraded.
        return [*early, *own, *later, *confirm.open_window(cfg)]
    return [*early, *own, *later]
