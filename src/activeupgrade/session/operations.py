"""The steps of each maintenance operation (where each may run is data in
``model/graph.py``; the engine runs them in its Busy slot, journaled and logged).

Arguments come from API clients: each is checked here, before the operation starts, and a
bad one is a UsageError naming the argument and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from activeupgrade.config.model import Config, ServiceSpec, VolumeRole
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import ServiceError, UsageError
from activeupgrade.instance import Instance
from activeupgrade.model.states import Operation, Side
from activeupgrade.platform.services import registry as services
from activeupgrade.platform.services.backends import backend_for
from activeupgrade.platform.services.supervisor import Supervisor
from activeupgrade.platform.side import namespace
from activeupgrade.platform.side import partner as partner_state
from activeupgrade.platform.volumes import adoption, livepath, registry, replica
from activeupgrade.platform.volumes.resync import Progress
from activeupgrade.platform.volumes.state import SyncState
from activeupgrade.store.db import Store
from activeupgrade.units import human_bytes

ConfigOf = Callable[[], Config]
"""The configuration the operation acts under (the session's, or the loaded one)."""

OUTPUT_KEPT = 1 << 20
"""Characters of a command's stdout and stderr kept in an ``exec`` result (the whole output
streams to the caller and goes to the activity log)."""


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise UsageError(f"`{name}` must be a non-empty string", hint=f"Give `{name}`.")
    return value


def _number(args: dict[str, Any], name: str, default: float, *, low: float, high: float
            ) -> float:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"`{name}` must be a number of seconds, not {value!r}")
    if not low <= float(value) <= high:
        raise UsageError(f"`{name}` must be between {low:g} and {high:g} seconds, "
                         f"not {value}")
    return float(value)


def _say(ctx: StepContext, event: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        ctx.write(event, line)

    return say


def _volume_progress(ctx: StepContext, name: str,
                     phases: tuple[tuple[str, float], ...] = ()) -> Callable[[Progress], None]:
    """Resync progress said as the step's. ``phases``: the passes the step makes one after
    the other (a new pass starts a new ``Progress``), with the part of the step each
    takes; the step's percent is the passes ended plus the running pass's part."""
    seen: list[float] = []

    def report(p: Progress) -> None:
        if not seen or seen[-1] != p.started:
            seen.append(p.started)
        if not phases:
            ctx.progress(p.percent, f"{name}: {p.text()}", **p.counts())
            return
        n = min(len(seen), len(phases)) - 1
        before = sum(part for _, part in phases[:n])
        label, part = phases[n]
        ctx.progress(before + part * p.percent / 100.0, f"{name}: {label}: {p.text()}",
                     **p.counts())

    return report


ADOPT_PHASES = (("copying into a new replica", 60.0), ("checking the copy", 5.0),
                ("mirroring into replica b", 35.0))
"""The passes of an adoption where the live path becomes a link (unprivileged) and their
part of it: the first copy reads the tree from its disk into replica a; the mirror copies
between replicas of one filesystem."""
BOUND_ADOPT_PHASES = (("copying into replica b", 95.0), ("checking the copy", 5.0))
"""Where the original folder stays as replica a (root): one copy, into replica b (its
``cp`` groups, then what they left)."""


# -- volumes ----------------------------------------------------------------------------
def adopt_steps(instance: Instance, store: Store, args: dict[str, Any],
                sync: SyncState | None = None) -> list[Step]:
    path = os.path.normpath(_text(args, "path"))
    if not os.path.isabs(path):
        raise UsageError(f"`path` must be absolute, not {path!r}")
    try:
        role = VolumeRole(str(args.get("role", "")))
    except ValueError:
        raise UsageError(f"`role` must be system or data, not {args.get('role')!r}") from None
    mode = str(args.get("mode", "") or "")
    phases = (BOUND_ADOPT_PHASES if adoption.mode_for(store, path, mode) == livepath.BIND
              else ADOPT_PHASES)

    def run(ctx: StepContext) -> None:
        vol = adoption.adopt(instance, store, path, role, mode=mode,
                             progress=_volume_progress(ctx, path, phases),
                             report=_say(ctx, "volume.adopt"), check=ctx.check, state=sync)
        ctx.results["volume"] = vol.view()

    return [Step("volume.adopt", run, 24 * 3600.0, f"adopt {path} as a {role} volume")]


def release_steps(store: Store, args: dict[str, Any],
                  sync: SyncState | None = None) -> list[Step]:
    vol = registry.require(store, _text(args, "name"))

    def run(ctx: StepContext) -> None:
        adoption.release(store, vol, report=_say(ctx, "volume.release"),
                         progress=_volume_progress(ctx, vol.name), check=ctx.check,
                         state=sync)
        ctx.results["released"] = vol.path

    return [Step("volume.release", run, 24 * 3600.0, f"release {vol.path}")]


def attach_steps(store: Store, args: dict[str, Any]) -> list[Step]:
    vol = registry.require(store, _text(args, "name"))

    def run(ctx: StepContext) -> None:
        line = registry.attach(vol)
        ctx.write("volume.attach", line or f"{vol.path} already shows replica {vol.intended}",
                  details={"volume": vol.name, "replica": vol.intended})
        ctx.results.update(name=vol.name, path=vol.path, replica=vol.intended,
                           attached=line is not None)

    return [Step("volume.attach", run, 60.0, f"attach the live path of {vol.name}")]


def resync_steps(store: Store, args: dict[str, Any],
                 sync: SyncState | None = None) -> list[Step]:
    vol = registry.require(store, _text(args, "name"))

    def run(ctx: StepContext) -> None:
        live = vol.live_or_fail()
        res = replica.sync(store, vol, live, vol.other(live),
                           progress=_volume_progress(ctx, vol.name), check=ctx.check,
                           state=sync)
        fresh = registry.require(store, vol.name)
        fresh.duplex = True
        registry.save(store, fresh)
        ctx.write("volume.resync.done",
                  f"{vol.name}: replica {vol.other(live)} resynchronised from {live}: "
                  f"{res.copied_files} copied ({human_bytes(res.copied_bytes)}), "
                  f"{res.deleted} deleted in {res.seconds:.2f}s",
                  details={"volume": vol.name, **res.to_dict()})
        ctx.results.update(name=vol.name, **{"from": live, "to": vol.other(live)},
                           **res.to_dict())

    return [Step("volume.resync", run, 24 * 3600.0, f"resync {vol.name}")]


def verify_steps(store: Store, args: dict[str, Any],
                 sync: SyncState | None = None) -> list[Step]:
    names = args.get("names") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError("`names` must be a list of volume names (empty: every volume)")
    full = args.get("full", False)
    if not isinstance(full, bool):
        raise UsageError("`full` must be true (byte for byte) or false (quick)")
    vols = [registry.require(store, n) for n in names] if names else registry.all_volumes(
        store)

    def run(ctx: StepContext) -> None:
        results = []
        checked = 0
        for i, vol in enumerate(vols):
            ctx.check()
            ctx.progress(100.0 * i / max(1, len(vols)),
                         f"comparing the replicas of {vol.name} ({i + 1} of {len(vols)})",
                         files_done=checked)
            entries, lagging = replica.verify_in_use(vol, full=full, state=sync)
            checked += entries
            ctx.write("volume.verify", f"{vol.name}: replicas identical ({entries} entries, "
                      + ("byte for byte" if full else "quick")
                      + (f"; {len(lagging)} changed by the applications since the last "
                         "resync began: pending resync" if lagging else "") + ")",
                      details={"volume": vol.name, "lagging": lagging[:50]})
            results.append({"name": vol.name, "entries": entries, "identical": True,
                            "full": full, "pending": len(lagging)})
        ctx.results["volumes"] = results

    return [Step("volume.verify", run, 24 * 3600.0, "verify replicas")]


# -- services ---------------------------------------------------------------------------
def service_steps(instance: Instance, store: Store, operation: Operation,
                  args: dict[str, Any], config_of: ConfigOf) -> list[Step]:
    spec = services.find(config_of(), _text(args, "name"))
    verb = {Operation.SERVICE_START: "start", Operation.SERVICE_STOP: "stop",
            Operation.SERVICE_RELEASE: "release"}[operation]
    backend = backend_for(spec, instance, store)
    if verb == "release" and not isinstance(backend, Supervisor):
        raise ServiceError(
            f"service {spec.name} is run by {backend.kind}: it has no keeper to release",
            hint=f"Use `au service stop {spec.name}` without --release.",
        )

    def run(ctx: StepContext) -> None:
        done: dict[str, Any]
        if verb == "start":
            started = backend.start(spec, check=ctx.check)
            done = {"started": not started.already, "seconds": round(started.seconds, 3),
                    "detail": started.detail}
        else:
            stopped = backend.stop(spec)
            done = {"stopped": not stopped.already, "seconds": round(stopped.seconds, 3),
                    "killed": stopped.killed}
            if isinstance(backend, Supervisor) and verb == "release":
                backend.shutdown(spec)
                done["released"] = True
        ctx.write(f"service.{verb}", f"operator {verb}: {spec.name}", details=done)
        ctx.results.update(services.status(spec, instance, store, probe=False), **done)

    return [Step(f"service.{verb}:{spec.name}", run, _service_timeout(spec),
                 f"{verb} {spec.name}")]


def _service_timeout(spec: ServiceSpec) -> float:
    return spec.start_timeout + spec.stop_grace + 90.0


# -- the Upgrade Side -------------------------------------------------------------------
def restart_side_steps(instance: Instance, store: Store, session: str,
                       config_of: ConfigOf) -> list[Step]:
    def run(ctx: StepContext) -> None:
        cfg = config_of()
        namespace.stop(instance, final_state=namespace.SideState.REBOOTING)
        rec = namespace.start(instance, store, cfg, session)
        state, detail = partner_state.partner_state(instance)
        ctx.write("side.restart", f"Upgrade Side restarted: {state.value} ({detail})",
                  side=Side.UPGRADE, details={"pid": rec.get("pid")})
        ctx.results.update(partner_state=state.value, detail=detail, pid=rec.get("pid"))

    return [Step("side.restart", run, 300.0, "restart the Upgrade Side", Side.UPGRADE)]


def exec_steps(instance: Instance, args: dict[str, Any]) -> list[Step]:
    argv = args.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise UsageError("`argv` must be a non-empty list of strings",
                         hint="au exec -- COMMAND [ARGS...]")
    timeout = _number(args, "timeout", 3600.0, low=1.0, high=7 * 24 * 3600.0)
    user = args.get("user", "")
    if not isinstance(user, str):
        raise UsageError("`user` must be a user name or uid of the Upgrade Side")

    def run(ctx: StepContext) -> None:
        node = ctx.write("side.exec", "au exec: " + " ".join(argv)
                         + (f" (as {user})" if user else ""), side=Side.UPGRADE,
                         details={"argv": argv, "timeout": timeout, "user": user or "root"})

        def line(stream: str, text: str) -> None:
            ctx.output(stream, text)
            ctx.write("side.exec.output", text, parent=node, side=Side.UPGRADE,
                      details={"stream": stream})

        done = namespace.run(instance, argv, timeout, on_line=line, user=user,
                             stop=lambda: ctx.cancel.cancelled)
        if done.stopped:
            ctx.check()  # cancelled: Interrupted
        ctx.log.update_details(node, {"exit": done.returncode,
                                      "duration": round(done.duration, 3)})
        ctx.write("side.exec.done", f"exit {done.returncode} after {done.duration:.2f}s",
                  parent=node, side=Side.UPGRADE,
                  details={"exit": done.returncode, "seconds": round(done.duration, 3)})
        ctx.results.update(returncode=done.returncode, seconds=round(done.duration, 3),
                           stdout=done.stdout[-OUTPUT_KEPT:], stderr=done.stderr[-OUTPUT_KEPT:],
                           timed_out=done.timed_out)

    return [Step("side.exec", run, timeout + 30.0, "run a command on the Upgrade Side",
                 Side.UPGRADE)]


def steps_for(instance: Instance, store: Store, operation: Operation, args: dict[str, Any],
              *, session: str, config_of: ConfigOf,
              sync: SyncState | None = None) -> list[Step]:
    """The steps of ``operation`` with ``args`` (refused with a UsageError when bad)."""
    match operation:
        case Operation.ADOPT:
            return adopt_steps(instance, store, args, sync)
        case Operation.RELEASE:
            return release_steps(store, args, sync)
        case Operation.RESYNC:
            return resync_steps(store, args, sync)
        case Operation.VERIFY:
            return verify_steps(store, args, sync)
        case Operation.ATTACH:
            return attach_steps(store, args)
        case Operation.SERVICE_START | Operation.SERVICE_STOP | Operation.SERVICE_RELEASE:
            return service_steps(instance, store, operation, args, config_of)
        case Operation.RESTART_UPGRADE_SIDE:
            return restart_side_steps(instance, store, session, config_of)
        case Operation.EXEC:
            return exec_steps(instance, args)
    raise UsageError(f"unknown operation {operation!r}")
