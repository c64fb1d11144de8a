"""Running one custom action (SPEC §6).

The action's file is vetted (``security.py``), then run with the ``ACTIVE_UPGRADE_*``
environment through the one subprocess wrapper (own process group, killed whole on
timeout; recorded while it runs, so that the daemon kills it after a crash: ``groups.py``).
Exit 0 is success; 75 (``EX_TEMPFAIL``) is retried with back-off inside the action's
timeout; anything else fails with the last line of stderr as the reason. Every
output line goes to the activity log under the action's node; ``PROGRESS <percent>
<text>`` lines also update the step's progress. Actions of the Upgrade Side run inside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from activeupgrade import proc
from activeupgrade.config.model import ActionSpec, Config
from activeupgrade.engine.steps import StepContext
from activeupgrade.errors import ActionError, AUError
from activeupgrade.model.states import Severity, Side
from activeupgrade.platform.actions import groups, security
from activeupgrade.platform.actions.env import ActionContext, action_env, substitute
from activeupgrade.platform.actions.inside import enter, upgrade_side_exists

EX_TEMPFAIL = 75
"""Exit value meaning "retry later"."""
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0


@dataclass
class ActionResult:
    """How one action ran."""

    name: str
    side: Side
    ok: bool
    returncode: int | None = None
    seconds: float = 0.0
    attempts: int = 0
    reason: str = ""
    node: int = 0
    output: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "side": self.side.value, "ok": self.ok,
                "exit": self.returncode, "seconds": round(self.seconds, 4),
                "attempts": self.attempts, "reason": self.reason}


def parse_progress(line: str) -> tuple[float, str] | None:
    """``PROGRESS 40 copying files`` → (40.0, "copying files")."""
    parts = line.strip().split(maxsplit=2)
    if len(parts) < 2 or parts[0] != "PROGRESS":
        return None
    try:
        percent = float(parts[1].rstrip("%"))
    except ValueError:
        return None
    return max(0.0, min(100.0, percent)), parts[2] if len(parts) > 2 else ""


@dataclass(frozen=True)
class Launch:
    """How the action's process is started."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    user: str | None
    """The wrapper switches to this user (None: already switched, or the tool's user)."""


def launch_for(spec: ActionSpec, side: Side, ctx: StepContext, env: dict[str, str]) -> Launch:
    """The command line, environment, folder and user of an action on ``side``."""
    argv = [spec.file, *substitute(spec.args, env)]
    if side is Side.UPGRADE:
        inside = enter(ctx.instance)
        prefix = list(inside.prefix)
        user: str | None = spec.user or None
        if inside.isolated and spec.user:
            # Enter the Upgrade Side first, then switch user there.
            prefix += ["runuser", "-u", spec.user, "--"]
            user = None
        return Launch(prefix + argv, {**inside.env, **env}, inside.cwd or "/", user)
    return Launch(argv, env, "/", spec.user or None)


def run_action(
    ctx: StepContext, spec: ActionSpec, side: Side, cfg: Config, *, dry_run: bool = False,
    raise_on_failure: bool = True,
) -> ActionResult:
    """Run ``spec`` on ``side`` now; raises ActionError on failure unless told not to."""
    node = ctx.write(
        "action.start",
        f"{spec.control.value} action {spec.name} on the {side.value} Side"
        + (f": {spec.description}" if spec.description else ""),
        details={"action": spec.name, "file": spec.file, "control": spec.control.value,
                 "timing": spec.timing.value, "side": side.value, "user": spec.user},
        side=side,
    )
    result = ActionResult(spec.name, side, ok=False, node=node)
    began = time.monotonic()
    try:
        _run(ctx, spec, side, cfg, dry_run, result, node)
    except AUError as exc:
        result.reason = exc.message
        result.seconds = time.monotonic() - began
        _finish(ctx, result)
        if raise_on_failure:
            raise
        return result
    result.ok = True
    result.seconds = time.monotonic() - began
    _finish(ctx, result)
    return result


def _run(
    ctx: StepContext, spec: ActionSpec, side: Side, cfg: Config, dry_run: bool,
    result: ActionResult, node: int,
) -> None:
    security.vet(spec, cfg)
    env = action_env(ActionContext(
        side=side, state=ctx.state, request=ctx.current_request, session=ctx.session,
        attempt=ctx.attempt, config=cfg.source, dry_run=dry_run,
        host_split=upgrade_side_exists(ctx.instance),
    ))
    launch = launch_for(spec, side, ctx, env)
    deadline = time.monotonic() + spec.timeout
    backoff = FIRST_BACKOFF

    def sink(stream: str, line: str) -> None:
        result.output.append((stream, line))
        progress = parse_progress(line) if stream == "stdout" else None
        if progress is not None:
            ctx.progress(*progress)
        ctx.write("action.output", line, parent=node, side=side,
                  details={"stream": stream, "action": spec.name})

    while True:
        ctx.check()
        remaining = min(deadline - time.monotonic(), ctx.remaining())
        if remaining <= 0:
            raise ActionError(
                f"action {spec.name} did not succeed within its timeout of {spec.timeout:.0f}s"
                " (it kept asking to retry)",
                hint="Fix what the action waits for, or raise its timeout; then Retry.",
            )
        result.attempts += 1
        key = f"{ctx.session or 'idle'}-{node}-{result.attempts}"

        def started(pid: int, key: str = key) -> None:
            groups.record(ctx.store, key, pid, spec.name, side.value)

        try:
            done = proc.run(launch.argv, env=launch.env, cwd=launch.cwd, timeout=remaining,
                            check=False, on_line=sink, user=launch.user,
                            stop=lambda: ctx.cancel.cancelled,
                            on_start=started)
        finally:
            groups.forget(ctx.store, key)
        if done.stopped:
            ctx.check()  # the operator cancelled or aborted: Interrupted
        result.returncode = done.returncode
        if done.timed_out:
            raise ActionError(
                f"action {spec.name} timed out after {done.duration:.1f}s; its process group "
                "was killed",
                hint="Find why it hangs (its output is in the log), or raise its timeout; "
                "then Retry.",
            )
        if done.returncode == 0:
            return
        if done.returncode == EX_TEMPFAIL:
            wait = min(backoff, max(0.0, deadline - time.monotonic()))
            ctx.write("action.retry",
                      f"{spec.name} asked to retry later (exit 75); again in {wait:.1f}s",
                      parent=node, side=side, severity=Severity.NOTICE,
                      details={"attempt": result.attempts, "wait": wait})
            _sleep(ctx, wait)
            backoff = min(backoff * 2, MAX_BACKOFF)
            continue
        reason = done.last_stderr_line or done.explain()
        raise ActionError(
            f"action {spec.name} failed (exit {done.returncode}): {reason}",
            hint="Fix the cause the action reports (its output is in the log), then Retry.",
            details={"exit": done.returncode, "action": spec.name},
        )


def _sleep(ctx: StepContext, seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ctx.check()
        time.sleep(min(left, 0.2))


def _finish(ctx: StepContext, result: ActionResult) -> None:
    ctx.log.update_details(result.node, {"exit": result.returncode,
                                         "duration": round(result.seconds, 4),
                                         "attempts": result.attempts, "ok": result.ok})
    if result.ok:
        ctx.write("action.done", f"{result.name} succeeded in {result.seconds:.2f}s",
                  parent=result.node, side=result.side, details=result.to_dict())
    else:
        ctx.write("action.failed", f"{result.name} failed: {result.reason}",
                  parent=result.node, side=result.side, severity=Severity.ERROR,
                  details=result.to_dict())
