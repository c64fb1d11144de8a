"""The CLI's progress display and what Ctrl-C does to a long command.

On a terminal the progress is drawn with rich: one bar for the request (or operation),
one for its running step, with the bytes and files the step counted, its rate and the
time left (all from the engine's progress document, see ``present/progress.py``). Off a
terminal it is the plain ``ProgressLine``: a line per real change on standard error.

Ctrl-C while a command follows work in the daemon asks whether to cancel the work or
leave it running; without a terminal to ask on, the work is left running and the command
says so. Leaving it ends the command only: the daemon goes on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from activeupgrade.engine.view import StatusView
from activeupgrade.present.progress import ProgressLine, counts_text, overall, where_text

Sink = Callable[[StatusView], None]


class RichProgress:
    """Two bars on a terminal: the request's and its running step's."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = Console(file=stream, highlight=False)
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=30),
            TextColumn("{task.fields[pct]:>6}"), TextColumn("{task.fields[detail]}"),
            console=self.console, transient=False, auto_refresh=True,
            refresh_per_second=8,
        )
        self.request = self.bars.add_task("starting", total=100.0, pct="", detail="")
        self.step = self.bars.add_task("", total=100.0, pct="", detail="", visible=False)
        self.ended = False

    def start(self) -> None:
        self.bars.start()

    def stop(self) -> None:
        self.bars.stop()

    def status(self, status: StatusView) -> None:
        p = status.progress
        if not p.step:
            what = status.action.value if status.action else status.request.value
            self.bars.update(self.request, description=f"{what}: starting", pct="",
                             detail=str(status.upgrade_state))
            return
        pct = overall(status)
        self.bars.update(self.request, description=where_text(status), completed=pct,
                         pct=f"{pct:.1f}%", detail="")
        self.bars.update(self.step, visible=True, completed=p.percent,
                         description=f"  {p.step}", pct=f"{p.percent:.1f}%",
                         detail=" · ".join(x for x in (counts_text(p), p.text) if x)[:100])

    def finish(self, ok: bool) -> None:
        """The work ended: the request's bar reads 100 % only now (and only if it ended
        well)."""
        if ok:
            self.bars.update(self.request, completed=100.0, pct="100.0%")
            self.bars.update(self.step, visible=False)


class Display:
    """What a command hands the API client as ``on_progress``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.rich: RichProgress | None = None
        self.plain: ProgressLine | None = None
        if self.stream.isatty() and os.environ.get("TERM") != "dumb":
            self.rich = RichProgress(self.stream)
            self.rich.start()
        else:
            self.plain = ProgressLine(self.stream)

    def __call__(self, status: StatusView) -> None:
        if self.rich is not None:
            self.rich.status(status)
        elif self.plain is not None:
            self.plain.status(status)

    def pause(self) -> None:
        """Let a question be asked on the terminal."""
        if self.rich is not None:
            self.rich.stop()

    def resume(self) -> None:
        if self.rich is not None:
            self.rich.start()

    def close(self, ok: bool) -> None:
        if self.rich is not None:
            self.rich.finish(ok)
            self.rich.stop()
        elif self.plain is not None:
            self.plain.done()


@contextmanager
def progress(quiet: bool = False) -> Iterator[Display | None]:
    """A progress display for the length of a command (None when ``quiet``)."""
    if quiet:
        yield None
        return
    shown = Display()
    ok = False
    try:
        yield shown
        ok = True
    finally:
        shown.close(ok)


def ask_cancel(what: str, display: Display | None, *, can_cancel: bool,
               why_not: str = "") -> bool:
    """After Ctrl-C: True to cancel ``what``, False to leave it running (always False
    without a terminal, and when it cannot be cancelled)."""
    err = sys.stderr
    if display is not None:
        display.pause()
    if not can_cancel:
        print(f"\nau: {what} cannot be cancelled{': ' + why_not if why_not else ''}; it goes "
              "on in the daemon (`au status`, `au log -f`).", file=err)
        return False
    if not (sys.stdin.isatty() and err.isatty()):
        print(f"\nau: interrupted: {what} goes on in the daemon (no terminal to ask whether "
              "to cancel it; `au status` shows it, `au abort` or `au cancel` stops it).",
              file=err)
        return False
    while True:
        try:
            answer = input(f"\n{what} is running. Cancel it [c] or leave it running [l]? ")
        except (EOFError, KeyboardInterrupt):
            answer = "l"
        answer = answer.strip().lower()
        if answer in ("c", "cancel"):
            if display is not None:
                display.resume()
            return True
        if answer in ("", "l", "leave"):
            print(f"au: {what} goes on in the daemon (`au status`, `au log -f`).", file=err)
            return False


