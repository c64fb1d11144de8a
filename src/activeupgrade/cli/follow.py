"""Following work in the daemon from a command, with Ctrl-C asking what to do.

``operate`` runs a maintenance operation and ``act`` an operator action, each followed to
its end with the progress display. On Ctrl-C the command asks (``progress.ask_cancel``):
cancelling an operation (or a readiness check) uses the engine's cancel token
(``POST /cancel``: it stops at its next check point and fails as Interrupted);
cancelling a session's request is an operator abort (``au abort``, when the state graph
allows it from where the session is); leaving it running ends the command with exit 130
while the daemon goes on.
"""

from __future__ import annotations

import sys
from typing import Any

from activeupgrade.api.client import Client, OutputSink
from activeupgrade.cli.progress import Display, ask_cancel
from activeupgrade.engine.view import StatusView
from activeupgrade.model.states import Operation, OperatorAction


def operate(client: Client, operation: Operation, args: dict[str, Any] | None = None, *,
            display: Display | None = None, on_output: OutputSink | None = None
            ) -> dict[str, Any]:
    """``client.operate`` with Ctrl-C handled."""
    started: list[str] = []
    try:
        return client.operate(operation, args, on_output=on_output, on_progress=display,
                              on_start=started.append)
    except KeyboardInterrupt:
        if not started or not ask_cancel(str(operation), display, can_cancel=True):
            raise
        print(f"au: cancelling {operation}…", file=sys.stderr)
        client.cancel(f"the operator cancelled {operation} (Ctrl-C)")
        return client.follow_operation(started[0], on_output=on_output, on_progress=display)


def act(client: Client, action: OperatorAction, *, display: Display | None = None,
        **kwargs: Any) -> StatusView:
    """``client.act`` with Ctrl-C handled."""
    try:
        return client.act(action, on_progress=display, **kwargs)
    except KeyboardInterrupt:
        if not kwargs.get("wait", True):
            raise
        status = client.status()
        if not status.busy:
            raise
        if action is OperatorAction.CHECK:
            if not ask_cancel("the readiness check", display, can_cancel=True):
                raise
            print("au: cancelling the readiness check…", file=sys.stderr)
            client.cancel("the operator cancelled the readiness check (Ctrl-C)")
            return client.follow(action, on_progress=display)
        what = f"{status.request} ({action})"
        possible = status.allows(OperatorAction.ABORT)
        why = "" if possible else (f"{status.upgrade_state} is past the point of no return"
                                   if action in (OperatorAction.COMMIT, OperatorAction.FINISH)
                                   else f"abort is not allowed in {status.upgrade_state}")
        if not ask_cancel(what, display, can_cancel=possible, why_not=why):
            raise
        print(f"au: aborting the session (abort costs: "
              f"{status.costs.get('abort', 'see au status')})…", file=sys.stderr)
        return client.act(OperatorAction.ABORT, on_progress=display)
