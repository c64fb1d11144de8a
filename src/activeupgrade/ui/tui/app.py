"""The terminal console (``au console``): the web console's layout in Textual, a thin view.

Title bar (host, loaded configuration), navigation tabs (Configuration, Upgrade Summary,
Active Upgrade, Activity Log), main pane, status bar. Everything comes from the daemon's
API through ``Client``; the event stream is followed by a thread worker on a client of its
own; requests run in thread workers and apply their answers on the UI thread.
Buttons are enabled from the status's ``allowed_actions`` and say the cost, as in the web
console (``present/console.py`` holds the shared wording); Commit (the point of no return)
and Abort from Merge ask for confirmation first. The Activity Log opens at the newest
entry and follows new ones while the cursor is on the last row (End goes there).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    ProgressBar,
    Select,
    Static,
    TabbedContent,
    TabPane,
)

from activeupgrade.activity import Entry, depth_map
from activeupgrade.api.client import Client
from activeupgrade.errors import AUError
from activeupgrade.model.states import OperatorAction, Severity
from activeupgrade.present import console as pages
from activeupgrade.present import rollback

SEVERITY_STYLE = {
    "debug": ("·", "dim"), "info": ("ℹ", "cyan"), "notice": ("●", "green"),
    "warning": ("⚠", "yellow"), "error": ("✖", "bold red"), "critical": ("‼", "bold magenta"),
}
ACTIONS = [a for a in OperatorAction if a is not OperatorAction.RETRY]
LOG_LIMIT = 2000
"""Entries the Activity Log tab shows (the newest)."""
LOG_PAGE = 10_000


class LogTable(DataTable[Any]):
    """The activity log: Home and End go to the first and the newest entry (not sideways);
    while the cursor is on the newest entry, new entries are followed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "first", "Oldest", show=False),
        Binding("end", "newest", "Newest", show=False),
    ]

    def action_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_newest(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    @property
    def following(self) -> bool:
        return self.row_count == 0 or self.cursor_row >= self.row_count - 1


class Confirm(ModalScreen[bool]):
    """Asks before an action that cannot be taken back lightly."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    #confirm-box { width: 72; height: auto; border: thick $warning; padding: 1 2;
                   background: $surface; }
    #confirm-buttons { height: auto; margin-top: 1; }
    #confirm-buttons Button { margin-right: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "no", "Cancel")]

    def __init__(self, question: str, yes: str) -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(escape(self.question), id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(self.yes, id="confirm-yes", variant="error")
                yield Button("Cancel", id="confirm-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_no(self) -> None:
        self.dismiss(False)


class StatusBar(Static):
    """Upgrade State, Operational State, Partner State, duplex/resync progress."""

    def show(self, status: dict[str, Any]) -> None:
        bar = pages.status_bar(status)
        text = (f"Upgrade State: [b]{bar['upgrade']}[/b]   Operational State: "
                f"[b]{bar['operational']}[/b]   Partner State: [b]{bar['partner']}[/b]   "
                f"{bar['duplex']}")
        if bar["where"]:
            text += f"   {bar['percent']:.1f}% {escape(bar['where'])}"
        self.update(text)


class ConsoleApp(App[None]):
    """The terminal console over one daemon."""

    TITLE = "Active Upgrade"
    CSS = """
    #nav { height: 1fr; }
    StatusBar { height: auto; background: $primary-darken-2; color: $text; padding: 0 1; }
    #log-severity { width: 28; }
    #log-file { width: 1fr; }
    #actions { grid-size: 3; grid-gutter: 1; height: auto; }
    #actions Button { width: 100%; }
    #broken { border: heavy $error; height: auto; padding: 0 1; }
    #notice { color: $error; height: auto; }
    #log-table { height: 1fr; }
    #progress { height: 1; margin-top: 1; }
    #progress-detail { height: auto; color: $text-muted; }
    #log-detail { height: auto; max-height: 12; border: round $primary; }
    .row { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("r", "refresh", "Refresh"),
        Binding("1", "tab('config')", "Configuration"),
        Binding("2", "tab('summary')", "Summary"),
        Binding("3", "tab('upgrade')", "Active Upgrade"),
        Binding("4", "tab('log')", "Activity Log"),
        Binding("c", "confirm_merge", "Confirm merge"),
    ]

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.events = Client(client.instance)
        """A second client for the event stream (its own connection)."""
        self.leaving = False
        self.status: dict[str, Any] = {}
        self.log_rows: list[dict[str, Any]] = []
        self.depths: dict[int, int] = {}
        self._ticks = 0

    # -- layout -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="upgrade", id="nav"):
            with TabPane("Configuration", id="config"), VerticalScroll():
                yield Label("Loaded configuration:", id="config-loaded")
                with Horizontal(classes="row"):
                    yield Input(placeholder="file name or path (empty: none)", id="config-path")
                    yield Button("Load for the next session", id="config-load")
                yield Static("", id="config-files")
            with TabPane("Upgrade Summary", id="summary"), VerticalScroll():
                yield Static("", id="summary-text")
            with TabPane("Active Upgrade", id="upgrade"), VerticalScroll():
                with Grid(id="actions"):
                    for action in ACTIONS:
                        yield Button(pages.TITLES[action], id=f"btn-{action.value}",
                                     disabled=True)
                with VerticalScroll(id="broken"):
                    yield Static("", id="broken-reason")
                    yield Button("Retry", id="btn-retry", variant="warning", disabled=True)
                yield Static("", id="notice")
                yield Static("", id="now")
                yield ProgressBar(total=100, show_eta=False, id="progress")
                yield Static("", id="progress-detail")
                yield Static("", id="rollback")
                yield Static("", id="side-writes")
            with TabPane("Activity Log", id="log"):
                with Horizontal(classes="row"):
                    yield Select([(s.value, s.value) for s in Severity], prompt="any severity",
                                 id="log-severity")
                    yield Input(placeholder="save to file (.json for JSON)", id="log-file")
                    yield Button("Save", id="log-save")
                yield LogTable(id="log-table", cursor_type="row")
                yield Static("", id="log-detail")
        yield StatusBar("", id="statusbar")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#log-table", DataTable)
        table.add_columns("Time", "Severity", "Message", "Event")
        self.action_refresh()
        self.follow_events()
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        """The confirmation window's time left ticks; the writes since a checkpoint change
        without a status event: the status is fetched again every few seconds then."""
        facts = self.status.get("facts") or {}
        open_window = (facts.get("confirm_window") or {}).get("outcome") == "open"
        frozen = any(c.get("phase") == "frozen" for c in facts.get("checkpoints") or [])
        if open_window:
            self.show_rollback(self.status)
        self._ticks += 1
        if (open_window or frozen) and self._ticks % 5 == 0:
            self.load_status()

    @work(thread=True, exclusive=True, group="status", exit_on_error=False)
    def load_status(self) -> None:
        self.call_from_thread(self.show_status, self.client.get("/status"))

    def action_confirm_merge(self) -> None:
        if "confirm" in (self.status.get("allowed_actions") or []):
            self.ask_then_submit("confirm")
        else:
            self.show_notice("Confirm: no confirmation window is open.")

    def show_rollback(self, status: dict[str, Any]) -> None:
        window = rollback.confirm_line(status)
        lines = ([f"Confirmation: {window} (key c confirms)"] if window else []) + \
            rollback.checkpoint_lines(status)
        self.query_one("#rollback", Static).update(escape("\n".join(lines)))

    # -- data ---------------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.load_all()

    def action_tab(self, name: str) -> None:
        self.query_one("#nav", TabbedContent).active = name

    # A load still running when the console closes finds no widgets to fill: that must not
    # fail the console (exit_on_error=False), it is simply dropped.
    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_all(self) -> None:
        status = self.client.get("/status")
        self.call_from_thread(self.show_status, status)
        self.call_from_thread(self.show_summary, self._summary_text(status))
        self.call_from_thread(self.show_config, status, self._config_files())
        self._load_log()
        self.load_writes(str(status.get("upgrade_state", "")))

    @work(thread=True, exclusive=True, group="writes")
    def load_writes(self, upgrade_state: str) -> None:
        """What the Upgrade Side wrote outside the volumes, while it exists (before merge)."""
        doc: dict[str, Any] | None = None
        if upgrade_state in ("Split", "PrepareMerge"):
            try:
                doc = self.client.get("/side/writes")
            except AUError:
                doc = None
        self.call_from_thread(self.show_writes, pages.side_writes(doc))

    def show_writes(self, writes: dict[str, Any]) -> None:
        text = ""
        if writes["shown"]:
            text = "\n".join([
                "[b]Written outside the managed volumes (not kept at merge)[/b]",
                escape(writes["summary"]), *(escape(f"  {line}") for line in writes["lines"])])
        self.query_one("#side-writes", Static).update(text)

    def _summary_text(self, status: dict[str, Any]) -> str:
        lines: list[str] = []
        try:
            text = self.client.get("/config/summary", file=status.get("config") or None)
            lines.append(escape(text.get("text", "") if isinstance(text, dict) else str(text)))
        except AUError:
            lines.append(escape("Configuration: "
                                + (status.get("config") or "(none: all adopted volumes)")))
        try:
            steps: dict[str, list[dict[str, Any]]] = self.client.get("/steps")
        except AUError as exc:
            return "\n".join([*lines, "", f"Steps unavailable: {exc.message}"])
        for request, listed in steps.items():
            lines += ["", f"[b]{request}[/b]"]
            lines += [escape(f"  {i + 1}. {s['name']} [{s['side']}] {s['description']}")
                      for i, s in enumerate(listed)] or ["  (no steps)"]
        return "\n".join(lines)

    def _config_files(self) -> list[str]:
        try:
            listing: dict[str, Any] = self.client.get("/config/files")
        except AUError as exc:
            return [f"(cannot list: {exc.message})"]
        return [str(f) for f in listing.get("files", [])]

    def _load_log(self) -> None:
        severity = self.query_one("#log-severity", Select).value
        params: dict[str, Any] = {"limit": LOG_PAGE}
        if isinstance(severity, str):
            params["severity"] = severity
        # The newest LOG_LIMIT entries: the API pages from the oldest.
        rows: list[dict[str, Any]] = []
        after = 0
        while True:
            page: list[dict[str, Any]] = self.client.get("/log", after=after, **params)
            rows = (rows + page)[-LOG_LIMIT:]
            if len(page) < LOG_PAGE:
                break
            after = page[-1]["id"]
        self.call_from_thread(self.show_log, rows)

    @work(thread=True, exclusive=True, group="events")
    def follow_events(self) -> None:
        # On its own client (its own connection): leaving the console closes it, which
        # ends the stream at once.
        try:
            for ev in self.events.events():
                self.call_from_thread(self.apply_event, ev.kind, ev.data)
        except AUError as exc:
            if not self.leaving:
                self.call_from_thread(self.show_notice, f"event stream closed: {exc.message}")

    def on_unmount(self) -> None:
        self.leaving = True
        self.events.close()

    def apply_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "status":
            self.show_status(data)
        elif kind == "progress":
            self.show_progress(data)
        elif kind == "log":
            self.add_log_row(data)

    # -- views --------------------------------------------------------------------------
    def show_status(self, status: dict[str, Any]) -> None:
        # A status fetched by a worker may arrive after newer ones from the event stream:
        # never let an older snapshot replace a newer one.
        if float(status.get("updated", 0)) < float(self.status.get("updated", 0)):
            return
        if status.get("upgrade_state") != self.status.get("upgrade_state"):
            self.load_writes(str(status.get("upgrade_state", "")))
        self.status = status
        bar = pages.status_bar(status)
        self.title = f"Active Upgrade — {socket.gethostname()}"
        self.sub_title = f"Configuration: {bar['config']}"
        self.query_one(StatusBar).show(status)
        for action in ACTIONS:
            b = pages.button(action, status)
            btn = self.query_one(f"#btn-{action.value}", Button)
            btn.disabled = not b["allowed"]
            btn.label = b["label"]
        retry = pages.retry_button(status)
        broken = status.get("operational_state") == "Broken"
        self.query_one("#broken").display = broken
        self.query_one("#broken-reason", Static).update(
            escape(f"Broken: {status.get('reason', '')}") if broken else "")
        rbtn = self.query_one("#btn-retry", Button)
        rbtn.disabled = not retry["allowed"]
        rbtn.label = retry["label"]
        self.query_one("#now", Static).update(
            f"Request: {status.get('request')}   Step: {status.get('step') or '-'}   "
            f"Session: {status.get('session') or '-'}   Attempt: {status.get('attempt')}")
        self.query_one("#config-loaded", Label).update(
            escape(f"Loaded configuration: {bar['config']}"))
        self.show_rollback(status)
        self._show_progress_bar()

    def show_progress(self, progress: dict[str, Any]) -> None:
        if self.status:
            self.status["progress"] = progress
            self.query_one(StatusBar).show(self.status)
            self._show_progress_bar()

    def _show_progress_bar(self) -> None:
        bar = pages.status_bar(self.status)
        busy = self.status.get("operational_state") == "Busy"
        widget = self.query_one("#progress", ProgressBar)
        widget.display = busy
        if busy:
            widget.update(progress=float(bar["percent"]))
        detail = f"{bar['where']}  {bar['detail']}".strip() if busy else ""
        self.query_one("#progress-detail", Static).update(escape(detail))

    def show_summary(self, text: str) -> None:
        self.query_one("#summary-text", Static).update(text)

    def show_config(self, status: dict[str, Any], files: list[str]) -> None:
        listing = "\n".join(f"  {f}" for f in files) or "  (none)"
        self.query_one("#config-files", Static).update(
            escape(f"Files in {self.client.instance.configs}:\n{listing}"))

    def show_notice(self, text: str) -> None:
        self.query_one("#notice", Static).update(escape(text))

    def show_log(self, rows: list[dict[str, Any]]) -> None:
        # Oldest first, each entry indented under its parent (as `au log` prints it), and
        # the cursor on the newest: that is where an operator looks first (in Broken, the
        # error that broke the request).
        entries = [Entry.from_dict(r) for r in rows]
        depth = depth_map(entries)
        self.log_rows = rows
        self.depths = depth
        table = self.query_one("#log-table", LogTable)
        table.clear()
        for e in entries:
            self._add_row(table, e.to_dict(), depth[e.id])
        table.action_newest()

    def _add_row(self, table: DataTable[Any], d: dict[str, Any], depth: int) -> None:
        icon, style = SEVERITY_STYLE.get(d["severity"], ("", ""))
        table.add_row(
            d["time"][11:19], Text(f"{icon} {d['severity']}", style=style),
            Text("  " * depth + d["message"]), d["event"], key=str(d["id"]),
        )

    def add_log_row(self, d: dict[str, Any]) -> None:
        severity = self.query_one("#log-severity", Select).value
        if isinstance(severity, str) and Severity(d["severity"]).rank < Severity(severity).rank:
            return
        if d["id"] in self.depths:
            return
        self.log_rows.append(d)
        parent = d.get("parent")
        depth = self.depths[parent] + 1 if parent in self.depths else 0
        self.depths[d["id"]] = depth
        table = self.query_one("#log-table", LogTable)
        following = table.following
        self._add_row(table, d, depth)
        if following:
            table.action_newest()

    # -- events -------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id or ""
        if bid.startswith("btn-"):
            self.show_notice("")
            self.ask_then_submit(bid[4:])
        elif bid == "config-load":
            self.load_config(self.query_one("#config-path", Input).value.strip())
        elif bid == "log-save":
            self.save_log(self.query_one("#log-file", Input).value.strip())

    def on_select_changed(self, event: Select.Changed) -> None:
        self.load_all()

    def ask_then_submit(self, action: str) -> None:
        """Commit and Abort from Merge ask first (``present.console.confirmation``)."""
        question = pages.confirmation(OperatorAction(action), self.status)
        if not question:
            self.submit_action(action)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.submit_action(action)
            else:
                self.show_notice(f"{pages.TITLES[OperatorAction(action)]} not sent: "
                                 "cancelled.")

        self.push_screen(Confirm(question, f"{pages.TITLES[OperatorAction(action)]} now"),
                         answered)

    @work(thread=True, group="action")
    def submit_action(self, action: str) -> None:
        try:
            status = self.client.post(f"/actions/{action}", {})  # follows on the stream
        except AUError as exc:
            self.call_from_thread(self.show_notice, f"{exc.message}\n{exc.hint}")
            return
        self.call_from_thread(self.show_status, status)

    @work(thread=True, group="action")
    def load_config(self, path: str) -> None:
        try:
            answer = self.client.post("/config/load", {"path": path})
        except AUError as exc:
            # The same ConfigError text as `au config validate`.
            self.call_from_thread(self.notify, f"{exc.message}\n{exc.hint}", severity="error",
                                  timeout=30)
            return
        self.call_from_thread(self.show_status, answer["status"])
        self.call_from_thread(self.notify, f"loaded {path or '(none)'}")

    def save_log(self, target: str) -> None:
        from activeupgrade.activity import render_json, render_text

        if not target:
            self.notify("give a file name to save to", severity="error")
            return
        entries = [Entry.from_dict(r) for r in self.log_rows]
        path = Path(target).expanduser()
        text = render_json(entries) if path.suffix == ".json" else render_text(entries)
        try:
            path.write_text(text)
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc.strerror}", severity="error")
            return
        self.notify(f"saved {len(entries)} entries to {path}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.show_entry(int(event.row_key.value))

    @work(thread=True, group="detail")
    def show_entry(self, entry_id: int) -> None:
        try:
            data = self.client.get(f"/log/{entry_id}")
        except AUError as exc:
            self.call_from_thread(self.notify, exc.message, severity="error")
            return
        entry = Entry.from_dict(data["entry"])
        children = [Entry.from_dict(c) for c in data["children"]]
        lines = [f"[b]{escape(entry.message)}[/b]  ({entry.event}, {entry.severity.value})"]
        lines += [escape(f"{k}: {v}") for k, v in pages.entry_facts(entry)]
        for stream, out in pages.entry_output(children).items():
            lines += [f"-- {stream}", *map(escape, out)]
        self.call_from_thread(self.query_one("#log-detail", Static).update, "\n".join(lines))
