"""The terminal console driven by Textual's pilot over a real daemon: the same sessions as
the browser test (check, split, merge, commit, finish; split, abort, finish), asserting the
status bar and the buttons at each step; the Activity Log tab with an entry's detail and
save to file. Screenshots (SVG) go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.widgets import Button, DataTable, Input, Static

from activeupgrade.api.client import Client
from activeupgrade.instance import Instance
from activeupgrade.ui.tui.app import Confirm, ConsoleApp, StatusBar
from tests.support import au

from .conftest import Rollback, Web

ACTIONS = ["check", "split", "merge", "commit", "abort", "finish"]


async def until(pilot: Any, cond: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            status = getattr(pilot.app, "status", {})
            raise AssertionError(f"timed out waiting for {what}; console status: {status}")
        await pilot.pause(0.1)


def buttons(app: ConsoleApp) -> dict[str, tuple[bool, str]]:
    out = {}
    for a in ACTIONS:
        b = app.query_one(f"#btn-{a}", Button)
        out[a] = (not b.disabled, str(b.label))
    return out


def expect(app: ConsoleApp, upgrade: str, enabled: dict[str, str]) -> None:
    bar = str(app.query_one(StatusBar).render())
    assert f"Upgrade State: {upgrade}" in bar and "Operational State: Ready" in bar, bar
    for action, (on, label) in buttons(app).items():
        if action in enabled:
            assert on and label.endswith(f"now: {enabled[action]}"), (action, label)
        else:
            assert not on and f"not allowed in {upgrade} / Ready" in label, (action, label)


async def act(pilot: Any, app: ConsoleApp, action: str, state: str) -> None:
    """Press an action's button (confirming when the console asks) and wait for its end."""
    asks = action == "commit" or (action == "abort"
                                  and app.status.get("upgrade_state") == "Merge")
    await pilot.click(f"#btn-{action}")
    if asks:
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the confirmation")
        await pilot.pause(0.1)
        app.screen.query_one("#confirm-yes", Button).press()
    await until(pilot, lambda: app.status.get("action") == action
                and app.status.get("operational_state") != "Busy"
                and app.status.get("upgrade_state") == state, f"{action} to end in {state}")
    assert app.status["operational_state"] == "Ready", app.status.get("reason")


def test_sessions_in_the_terminal_console(web: Web, screenshots: Path, tmp_path: Path) -> None:
    client = Client.for_instance(Instance(web.home), start=False)
    saved = tmp_path / "tui-log.json"

    async def drive() -> None:
        app = ConsoleApp(client)
        async with app.run_test(size=(170, 48)) as pilot:
            await until(pilot, lambda: bool(app.status), "the first status")
            # Configuration tab: load shop.toml for the next session (validated by the API).
            await pilot.press("1")
            await until(pilot, lambda: "shop.toml" in str(
                app.query_one("#config-files", Static).render()), "the file list")
            app.query_one("#config-path", Input).value = "shop.toml"
            app.query_one("#config-load", Button).press()
            await until(pilot, lambda: "shop.toml" in app.sub_title, "the loaded file")
            app.save_screenshot("tui-00-configuration.svg", str(screenshots))
            await pilot.press("3")
            expect(app, "Idle", {"check": "no disruption", "split": "no disruption"})
            app.save_screenshot("tui-01-active-upgrade-idle.svg", str(screenshots))
            await act(pilot, app, "check", "Idle")
            await act(pilot, app, "split", "Split")
            expect(app, "Split", {"merge": "applications restart", "abort": "no disruption"})
            assert "Partner State: None" not in str(app.query_one(StatusBar).render())
            # The Upgrade Side writes outside the managed volumes: listed before the merge.
            marker = f"/root/au-tui-{os.getpid()}"
            done = au(web.home, "exec", "--", "sh", "-c", f"echo kept-nowhere > {marker}")
            assert done.returncode == 0, done.stderr
            app.action_refresh()
            await until(pilot, lambda: marker in str(
                app.query_one("#side-writes", Static).render()), "the writes outside the volumes")
            assert "not kept" in str(app.query_one("#side-writes", Static).render())
            app.save_screenshot("tui-02-active-upgrade-split.svg", str(screenshots))
            await act(pilot, app, "merge", "Merge")
            expect(app, "Merge", {"commit": "no disruption (point of no return)",
                                  "abort": "applications restart"})
            app.save_screenshot("tui-03-active-upgrade-merge.svg", str(screenshots))
            await act(pilot, app, "commit", "Commit")
            expect(app, "Commit", {"finish": "no disruption"})
            await act(pilot, app, "finish", "Idle")
            expect(app, "Idle", {"check": "no disruption", "split": "no disruption"})
            if web.adopted:
                # A failing readiness-check action: Broken with the reason, Retry offered.
                web.fail_flag.write_text("")
                await pilot.click("#btn-split")
                await until(pilot, lambda: app.status.get("operational_state") == "Broken",
                            "split to break")
                assert app.query_one("#broken").display
                assert app.status["reason"] in str(
                    app.query_one("#broken-reason", Static).render())
                retry = app.query_one("#btn-retry", Button)
                assert not retry.disabled and str(retry.label) == (
                    "Retry now: re-runs the failed step")
                assert {a for a, (on, _) in buttons(app).items() if on} == {"abort"}
                app.save_screenshot("tui-03b-broken-retry.svg", str(screenshots))
                web.fail_flag.unlink()
                await pilot.click("#btn-retry")
                await until(pilot, lambda: app.status.get("attempt") != 1
                            or app.status.get("upgrade_state") == "Split", "the retry to start")
                await until(pilot, lambda: app.status.get("operational_state") != "Busy",
                            "the retry to end")
                assert app.status["upgrade_state"] == "Split", app.status.get("reason")
                assert app.status["operational_state"] == "Ready", app.status.get("reason")
            else:
                await act(pilot, app, "split", "Split")
            await act(pilot, app, "abort", "Abort")
            expect(app, "Abort", {"finish": "no disruption"})
            assert not app.query_one("#broken").display
            await act(pilot, app, "finish", "Idle")

            # Summary tab: the steps of each request.
            await pilot.press("2")
            app.action_refresh()
            await until(pilot, lambda: "PrepareSplit" in str(
                app.query_one("#summary-text", Static).render()), "the summary")
            app.save_screenshot("tui-04-upgrade-summary.svg", str(screenshots))

            # Activity Log tab: the tree, an entry's detail, save to file.
            await pilot.press("4")
            table = app.query_one("#log-table", DataTable)
            await until(pilot, lambda: table.row_count > 20, "log rows")
            table.focus()
            await pilot.press("enter")
            await until(pilot, lambda: str(app.query_one("#log-detail", Static).render()) != "",
                        "the entry detail")
            app.save_screenshot("tui-05-activity-log.svg", str(screenshots))
            app.query_one("#log-file", Input).value = str(saved)
            app.query_one("#log-save", Button).press()
            await until(pilot, saved.exists, "the saved log")

    try:
        asyncio.run(drive())
    finally:
        client.close()
    entries = json.loads(saved.read_text())
    events = {e["event"] for e in entries}
    assert {"request.start", "step.start"} <= events, sorted(events)[:20]


def test_confirmation_window_and_checkpoint_in_the_terminal_console(
        web: Web, rollback: Rollback, screenshots: Path) -> None:
    """Merge with a confirmation window and a checkpointed data volume: the console shows
    the time left and the writes since the checkpoint; key c confirms; the abort's question
    says where the data returns and where the writes are kept; then the saved folder."""
    client = Client.for_instance(Instance(web.home), start=False)

    async def drive() -> None:
        app = ConsoleApp(client)
        async with app.run_test(size=(170, 48)) as pilot:
            await until(pilot, lambda: bool(app.status), "the first status")
            await pilot.press("1")
            app.query_one("#config-path", Input).value = rollback.name
            app.query_one("#config-load", Button).press()
            await until(pilot, lambda: rollback.name in app.sub_title, "the loaded file")
            await pilot.press("3")
            await act(pilot, app, "split", "Split")
            assert app.query_one("#btn-confirm", Button).disabled
            await act(pilot, app, "merge", "Merge")

            def shown() -> str:
                return str(app.query_one("#rollback", Static).render())

            await until(pilot, lambda: "left), or the merge is aborted automatically"
                        in shown(), "the confirmation window")
            confirm = app.query_one("#btn-confirm", Button)
            assert not confirm.disabled and str(confirm.label).startswith("Confirm now")
            # The application writes after the checkpoint: listed without a status event.
            (rollback.data / "orders.log").write_text("order 1\norder 2\n")
            (rollback.data / "order-2.json").write_text("{}")
            await until(pilot, lambda: "2 file(s) written since" in shown(),
                        "the writes since the checkpoint", timeout=60)
            assert "created  order-2.json" in shown() and "changed  orders.log" in shown()
            app.save_screenshot("tui-06-merge-confirm-window.svg", str(screenshots))
            # The CLI lists the same: au volume show, au status, au plan.
            show = au(web.home, "volume", "show", str(rollback.data))
            assert "checkpoint: taken at merge" in show.stdout, show.stdout + show.stderr
            assert "2 file(s) written since" in show.stdout and "order-2.json" in show.stdout
            status = au(web.home, "status").stdout
            assert "Data checkpoints:" in status and "2 file(s) written since" in status
            assert "Confirmation:      confirm by" in status
            plan = au(web.home, "plan").stdout
            assert "checkpoint at merge" in plan and "2 file(s) written since" in plan
            assert "Confirmation after merge: within 600s" in plan
            await pilot.press("c")
            await until(pilot, lambda: ((app.status.get("facts") or {}).get(
                "confirm_window") or {}).get("outcome") == "confirmed", "the confirmation")
            await until(pilot, lambda: "merge confirmed" in shown(), "the confirmed window")
            assert app.query_one("#btn-confirm", Button).disabled
            await pilot.click("#btn-abort")
            await until(pilot, lambda: isinstance(app.screen, Confirm), "the abort question")
            question = str(app.screen.query_one("#confirm-question", Static).render())
            assert "data returns to the checkpoint of" in question, question
            assert "2 file(s) written since are kept in" in question, question
            app.screen.query_one("#confirm-yes", Button).press()
            await until(pilot, lambda: app.status.get("action") == "abort"
                        and app.status.get("operational_state") == "Ready", "the abort")
            await until(pilot, lambda: "Writes saved aside by an abort" in shown(),
                        "the saved folder")
            app.save_screenshot("tui-07-abort-saved-writes.svg", str(screenshots))

    try:
        asyncio.run(drive())
    finally:
        client.close()
    assert (rollback.data / "orders.log").read_text() == "order 1\n"
    assert not (rollback.data / "order-2.json").exists()
