"""The terminal console as an operator relies on it, driven by Textual's pilot over a real
daemon: progress moving during a long step (never back, never 100 % before the end),
the confirmation of Commit and of Abort from Merge, the Activity Log opening at the
newest entry and following new ones (Home and End go to the oldest and the newest entry,
never sideways). Screenshots of Idle, Split, Merge and Broken at a desktop's and at a
phone's width (44 columns, about 390 px) are saved as SVG and as PNG (rendered by
Debian's Chromium) under ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, ProgressBar, Static

from activeupgrade.api.client import Client
from activeupgrade.instance import Instance
from activeupgrade.ui.tui.app import Confirm, ConsoleApp, LogTable

from .conftest import Web
from .test_tui import act, until
from .test_web_browser import ARGS, CHROMIUM, IN_CI

DESKTOP = (120, 40)
PHONE = (44, 60)


async def shoot(pilot: Any, app: ConsoleApp, name: str, folder: Path) -> list[str]:
    """The console at both sizes: tui-NAME-desktop.svg and tui-NAME-phone.svg."""
    names = []
    for size, kind in ((PHONE, "phone"), (DESKTOP, "desktop")):
        await pilot.resize_terminal(*size)
        await pilot.pause(0.2)
        names.append(f"tui-{name}-{kind}.svg")
        app.save_screenshot(names[-1], str(folder))
    return names


def to_png(folder: Path, names: list[str]) -> None:
    """Render the SVG screenshots to PNG with Debian's Chromium."""
    problem = "" if Path(CHROMIUM).exists() else f"no Chromium at {CHROMIUM}"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = problem or "playwright is not installed"
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but the screenshots cannot be rendered: {problem}")
        return
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            for name in names:
                svg = folder / name
                page.goto(svg.as_uri())
                box = page.evaluate("(() => { const r = document.documentElement"
                                    ".getBoundingClientRect(); return [r.width, r.height]; })()")
                page.set_viewport_size({"width": max(200, int(box[0])),
                                        "height": max(200, int(box[1]))})
                page.screenshot(path=str(svg.with_suffix(".png")))
        finally:
            browser.close()


def test_operator_terminal_console(web: Web, screenshots: Path) -> None:
    if not web.adopted:
        pytest.skip("needs the adopted volume the readiness-check action lies on")
    client = Client.for_instance(Instance(web.home), start=False)
    client.post("/config/loaded", {"path": str(web.home / "configs" / "shop.toml")})
    names: list[str] = []

    async def drive() -> None:
        app = ConsoleApp(client)
        async with app.run_test(size=DESKTOP) as pilot:
            await until(pilot, lambda: bool(app.status), "the first status")
            await pilot.press("3")
            names.extend(await shoot(pilot, app, "idle", screenshots))

            # Progress during a long step.
            web.gates.mkdir()
            bar = app.query_one("#progress", ProgressBar)
            detail = app.query_one("#progress-detail", Static)
            seen: list[float] = []
            try:
                await pilot.click("#btn-check")
                for part in (1, 2, 3, 4):
                    await until(pilot, lambda p=part: f"part {p} of 4" in str(detail.render()),
                                f"part {part} shown")
                    seen.append(float(bar.progress))
                    assert bar.display and 0 < seen[-1] < 100, seen
                    if part == 1:
                        names.append("tui-progress-long-step-desktop.svg")
                        app.save_screenshot(names[-1], str(screenshots))
                    (web.gates / str(part)).write_text("")
            finally:
                for part in (1, 2, 3, 4):
                    (web.gates / str(part)).write_text("")
            assert seen == sorted(seen) and seen[0] < seen[-1], seen
            await until(pilot, lambda: app.status.get("operational_state") == "Ready"
                        and app.status.get("action") == "check", "the check to end")
            assert not bar.display

            await act(pilot, app, "split", "Split")
            names.extend(await shoot(pilot, app, "split", screenshots))
            await act(pilot, app, "merge", "Merge")
            names.extend(await shoot(pilot, app, "merge", screenshots))

            # Abort from Merge and Commit ask; Cancel (or Escape) sends nothing.
            await pilot.click("#btn-abort")
            await until(pilot, lambda: isinstance(app.screen, Confirm), "the abort question")
            assert "Abort from Merge" in str(app.screen.query_one(
                "#confirm-question", Static).render())
            names.append("tui-merge-confirm-abort-desktop.svg")
            app.save_screenshot(names[-1], str(screenshots))
            await pilot.pause(0.1)
            app.screen.query_one("#confirm-no", Button).press()
            await until(pilot, lambda: not isinstance(app.screen, Confirm), "the question gone")
            assert "Abort not sent" in str(app.query_one("#notice", Static).render())
            assert client.status().upgrade_state.value == "Merge"
            commit = app.query_one("#btn-commit")
            assert "point of no return" in str(commit.label)  # type: ignore[attr-defined]
            await pilot.click("#btn-commit")
            await until(pilot, lambda: isinstance(app.screen, Confirm), "the commit question")
            assert "point of no return" in str(app.screen.query_one(
                "#confirm-question", Static).render())
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, Confirm), "the question gone")
            assert client.status().upgrade_state.value == "Merge"
            await act(pilot, app, "commit", "Commit")
            await act(pilot, app, "finish", "Idle")

            # Broken, and the log at its newest entry.
            web.fail_flag.write_text("")
            await pilot.click("#btn-split")
            await until(pilot, lambda: app.status.get("operational_state") == "Broken",
                        "split to break")
            names.extend(await shoot(pilot, app, "broken", screenshots))
            await pilot.press("4")
            app.action_refresh()
            table = app.query_one("#log-table", LogTable)
            newest = max(e["id"] for e in client.get("/log", limit=1, newest=1))
            await until(pilot, lambda: table.row_count > 20
                        and table.cursor_row == table.row_count - 1, "the log at its newest")
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            assert key is not None and int(key) >= newest
            names.extend(await shoot(pilot, app, "log-broken-newest", screenshots))
            # Home and End move between the oldest and the newest entry, not sideways.
            table.focus()
            await pilot.press("home")
            assert table.cursor_row == 0 and table.scroll_x == 0
            await pilot.press("end")
            assert table.cursor_row == table.row_count - 1 and table.scroll_x == 0
            # New entries are followed while the cursor is on the newest.
            rows = table.row_count
            web.fail_flag.unlink()
            client.post("/actions/abort", {})
            await until(pilot, lambda: app.status.get("action") == "abort"
                        and app.status.get("operational_state") == "Ready", "the abort")
            await until(pilot, lambda: table.row_count > rows, "new rows")
            await until(pilot, lambda: table.cursor_row == table.row_count - 1, "following")
            await pilot.press("3")
            await act(pilot, app, "finish", "Idle")

    try:
        asyncio.run(drive())
    finally:
        client.close()
        for part in (1, 2, 3, 4):
            (web.gates / str(part)).unlink(missing_ok=True)
        if web.gates.exists():
            os.rmdir(web.gates)
    to_png(screenshots, names)
    for name in names:
        assert (screenshots / name).with_suffix(".png").exists() or not IN_CI, name
