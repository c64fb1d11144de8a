"""How the demo drives the tool: its real CLI (``au ...`` in a subprocess) and its real API.

Read commands and operator commands that have no API call of their own (``volume``,
``service``, ``config``, ``exec``) run as ``au`` subprocesses on the demo's instance, exactly
as an operator types them. Operator actions go through the API client, which follows the
request's progress on the event stream. A command this build does not have
is a loud failure that names the feature the demo needs, never a skipped step.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from activeupgrade import proc
from activeupgrade.api.client import Client
from activeupgrade.demo.layout import DemoTree
from activeupgrade.errors import AUError, ProcessError
from activeupgrade.instance import Instance
from activeupgrade.model.states import OperatorAction
from activeupgrade.present.progress import ProgressLine

Say = Callable[[str], None]


def missing_feature(message: str, hint: str = "") -> AUError:
    """The demo needs a command or fact this build of the tool does not provide."""
    return AUError(f"missing feature: {message}", hint=hint)


class Au:
    """The ``au`` command and the API of the demo's instance."""

    def __init__(self, tree: DemoTree, say: Say, *, progress: bool) -> None:
        self.tree = tree
        self.say = say
        self.progress = progress
        self.env = proc.base_env({"AU_HOME": str(tree.home), "PYTHONUNBUFFERED": "1"})
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.for_instance(Instance(self.tree.home))
        return self._client

    def run(self, *args: str, feature: str, timeout: float = 600.0,
            echo: bool = False) -> proc.Completed:
        """``au ARGS``; a failure raises with au's own message and hint."""
        argv = [sys.executable, "-m", "activeupgrade", *args]

        def relay(stream: str, line: str) -> None:
            if echo and line.strip():
                self.say(f"    {line}")

        done = proc.run(argv, env=self.env, timeout=timeout, check=False, on_line=relay)
        if done.returncode == 0:
            return done
        stderr = done.stderr.strip()
        if "invalid choice" in stderr or "unrecognized arguments" in stderr:
            raise missing_feature(
                f"`au {' '.join(args[:2])}` is not available in this build: the demo needs it "
                f"for {feature}",
                stderr.splitlines()[-1].removeprefix("hint: ") if stderr else "",
            )
        lines = stderr.splitlines()
        message = next((ln[len("au: error: "):] for ln in lines
                        if ln.startswith("au: error: ")), done.explain())
        hint = next((ln[len("hint: "):] for ln in lines if ln.startswith("hint: ")), "")
        raise ProcessError(f"`au {' '.join(args)}` failed ({feature}): {message}", hint=hint,
                           details={"stderr": stderr[-4000:], "stdout": done.stdout[-2000:]})

    def json(self, *args: str, feature: str, timeout: float = 600.0) -> Any:
        done = self.run(*args, "--json", feature=feature, timeout=timeout)
        try:
            return json.loads(done.stdout)
        except ValueError as exc:
            raise missing_feature(f"`au {' '.join(args)} --json` printed no JSON ({feature})",
                                  done.stdout[-500:]) from exc

    def action(self, name: str, *, config: str | None = None) -> dict[str, Any]:
        """An operator action through the API, followed to its end with progress."""
        line = ProgressLine() if self.progress else None
        try:
            status = self.client.act(OperatorAction(name), config=config,
                                     on_progress=line.status if line else None)
        finally:
            if line is not None:
                line.done()
        return status.to_dict()

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.client.get("/status")
        return status

    def log(self, **params: Any) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.client.get("/log", **params)
        return entries

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
