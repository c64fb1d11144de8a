"""A small Platform whose steps do real work on real files in a temporary tree.

Each request copies files between a "live" and an "upgrade" folder, so a resumed or
aborted request can be checked by looking at the tree. Failures and blocking are injected
through files in the tree (the OS edge), never through sleeps.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from activeupgrade.config.model import Config
from activeupgrade.engine.steps import Step, StepContext
from activeupgrade.errors import StepError, UsageError
from activeupgrade.model.states import Operation, PartnerState, Request


class FilesPlatform:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.live = root / "live"
        self.upgrade = root / "upgrade"
        self.runs = root / "runs"
        for d in (self.live, self.upgrade, self.runs):
            d.mkdir(parents=True, exist_ok=True)
        (self.live / "version").write_text("1\n")
        self.fail_at: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.block_at: str = ""
        self.blocked = threading.Event()

    # -- Platform protocol -----------------------------------------------------------
    def session_config(self, session: str, config_path: str, *, stage: bool) -> Config:
        return Config(description="files")

    def idle_config(self, config_path: str) -> Config:
        return Config(description="files")

    def partner(self) -> tuple[PartnerState, str]:
        return (PartnerState.OS_UP, "") if any(self.upgrade.iterdir()) else (
            PartnerState.OS_SHUT_DOWN, "")

    def facts(self) -> dict[str, Any]:
        return {"duplex": not any(self.upgrade.iterdir())}

    def end_session(self, session: str) -> None:
        pass

    def steps(self, request: Request, config: Config) -> list[Step]:
        r = request.value
        table: dict[Request, list[tuple[str, Any]]] = {
            Request.CHECK_READINESS: [("check", self._touch("checked"))],
            Request.PREPARE_SPLIT: [("sync", self._copy(self.live, self.upgrade)),
                                    ("mark", self._touch("prepared"))],
            Request.EXECUTE_SPLIT: [("freeze", self._touch("frozen")),
                                    ("boot", self._write(self.upgrade / "booted", "yes"))],
            Request.PREPARE_MERGE: [("inspect", self._touch("inspected"))],
            Request.EXECUTE_MERGE: [("install", self._write(self.upgrade / "version", "2\n")),
                                    ("switch", self._copy(self.upgrade, self.live)),
                                    ("start", self._touch("started"))],
            Request.COMMIT: [("resync", self._clear(self.upgrade))],
            Request.ABORT: [("restore", self._write(self.live / "version", "1\n")),
                            ("discard", self._clear(self.upgrade))],
            Request.FINISH: [("verify", self._verify())],
        }
        return [
            Step(f"{r}.{name}", self._wrap(f"{r}.{name}", fn), timeout=30.0)
            for name, fn in table.get(request, [])
        ]

    def operation_steps(self, operation: Operation, args: dict[str, Any]) -> list[Step]:
        """``resync`` copies the live folder to ``args["to"]`` (a folder name), file by file;
        an unknown ``to`` is refused at once; other operations have no steps here."""
        if operation is not Operation.RESYNC:
            return []
        to = args.get("to")
        if not isinstance(to, str) or not to.isidentifier():
            raise UsageError("`to` must be a folder name")
        target = self.root / to
        name = f"{operation}.copy"

        def run(ctx: StepContext) -> None:
            target.mkdir(exist_ok=True)
            self._copy(self.live, target)(ctx)
            ctx.results["copied"] = sorted(p.name for p in target.iterdir())

        return [Step(name, self._wrap(name, run), timeout=30.0)]

    # -- step bodies -------------------------------------------------------------------
    def _wrap(self, name: str, fn: Any) -> Any:
        def run(ctx: StepContext) -> None:
            counter = self.runs / name
            counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
            if self.block_at == name:
                self.blocked.set()
                self.gate.wait(30)
            if name in self.fail_at:
                raise StepError(f"injected failure in {name}")
            fn(ctx)
            ctx.results["files"] = sorted(p.name for p in self.live.iterdir())

        return run

    def ran(self, name: str) -> int:
        counter = self.runs / name
        return int(counter.read_text()) if counter.exists() else 0

    def _touch(self, name: str) -> Any:
        return lambda ctx: (self.root / name).write_text(ctx.session or "idle")

    def _write(self, path: Path, text: str) -> Any:
        return lambda ctx: path.write_text(text)

    def _copy(self, src: Path, dst: Path) -> Any:
        def run(ctx: StepContext) -> None:
            for p in src.iterdir():
                ctx.check()
                shutil.copy2(p, dst / p.name)

        return run

    def _clear(self, folder: Path) -> Any:
        def run(ctx: StepContext) -> None:
            for p in folder.iterdir():
                p.unlink()

        return run

    def _verify(self) -> Any:
        def run(ctx: StepContext) -> None:
            if any(self.upgrade.iterdir()):
                raise StepError("upgrade folder not empty at finish")

        return run
