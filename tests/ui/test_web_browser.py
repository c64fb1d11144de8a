"""A whole session through the web console in Debian's headless Chromium (Playwright).

Login with the token; the Configuration page (load, a validation error worded as the
configuration part words it); Upgrade Summary; check, split, merge, commit, finish; a second
session split then abort; the Activity Log (tree, filter, detail, save). At every step the
status bar and the buttons are asserted. Screenshots of every page go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import au

from .conftest import Rollback, Web

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ACTIONS = ["check", "split", "merge", "commit", "abort", "finish"]

pytestmark = pytest.mark.browser


@pytest.fixture
def browser() -> Iterator[Any]:
    problem = ""
    if not Path(CHROMIUM).exists():
        problem = f"no Chromium at {CHROMIUM} (Debian package chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = problem or "playwright is not installed (./scripts/bootstrap.sh)"
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but the browser test cannot run: {problem}")
        pytest.skip(problem)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Console:
    """The page plus the assertions the test repeats."""

    def __init__(self, page: Any, web: Web, shots: Path) -> None:
        self.page = page
        self.web = web
        self.shots = shots
        self.base = web.url.rstrip("/")

    def shot(self, name: str) -> None:
        # A viewport as tall as the page, so the status bar sits at its end in the picture.
        size = self.page.viewport_size
        height = self.page.evaluate("document.documentElement.scrollHeight")
        self.page.set_viewport_size({"width": size["width"], "height": max(height, 600)})
        self.page.screenshot(path=str(self.shots / f"{name}.png"))
        self.page.set_viewport_size(size)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)
        # The event stream's first message is the status: the bar is live from then on.
        self.page.wait_for_function("document.getElementById('sb-live') !== null")

    def bar(self) -> dict[str, str]:
        t = self.page.locator
        return {k: t(f"#sb-{k}").inner_text() for k in
                ("upgrade", "operational", "partner", "duplex")}

    def buttons(self) -> dict[str, tuple[bool, str]]:
        out = {}
        for a in ACTIONS:
            b = self.page.locator(f"#btn-{a}")
            out[a] = (b.is_enabled(), b.inner_text())
        return out

    def act(self, action: str, state: str) -> dict[str, Any]:
        """Click an action's button (confirming when asked); wait until it ended (API)
        and the page shows ``state``."""
        self.page.locator(f"#btn-{action}").click()
        if action == "commit" or (action == "abort" and self.bar()["upgrade"] == "Merge"):
            self.page.locator("#confirm-yes").click()
        status = self.web.wait_ready(action)
        assert status["operational_state"] == "Ready", status.get("reason")
        assert status["upgrade_state"] == state, status
        self.page.wait_for_function(
            "([a, s]) => document.body.dataset.action === a"
            " && document.body.dataset.operationalState === 'Ready'"
            " && document.body.dataset.upgradeState === s",
            arg=[action, state], timeout=30_000,
        )
        return status

    def expect(self, upgrade: str, enabled: dict[str, str]) -> None:
        """The status bar shows ``upgrade``/Ready; exactly ``enabled`` buttons are enabled,
        each labelled with its cost; the others say they are not allowed."""
        bar = self.bar()
        assert bar["upgrade"] == upgrade and bar["operational"] == "Ready", bar
        for action, (on, label) in self.buttons().items():
            if action in enabled:
                assert on, (action, label)
                assert label.endswith(f"now: {enabled[action]}"), label
            else:
                assert not on, (action, label)
                assert f"not allowed in {upgrade} / Ready" in label, label


def test_whole_sessions_through_the_web_console(browser: Any, web: Web,
                                                screenshots: Path, tmp_path: Path) -> None:
    started = au(web.home, "service", "start", "shop")
    service_running = started.returncode == 0
    context = browser.new_context(viewport={"width": 1280, "height": 860},
                                  accept_downloads=True)
    page = context.new_page()
    c = Console(page, web, screenshots)

    # Login: an anonymous visit lands on the login page; a wrong token is refused.
    page.goto(c.base + "/upgrade")
    assert page.url.startswith(c.base + "/login")
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    assert "not valid" in page.locator(".error").inner_text()
    c.shot("01-login-refused")
    page.fill("#token", web.token)
    page.click("button[type=submit]")
    page.wait_for_url(c.base + "/upgrade")

    # Keyboard: the first Tab reaches the skip link, which moves focus to the main window.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # Configuration: load shop.toml for the next session.
    c.go("/config?file=shop.toml")
    assert page.locator("#validation-ok").is_visible()
    assert "shop" in page.locator("main").inner_text()
    page.click("#load")
    assert "Loaded " in page.locator("#config-notice").inner_text()
    assert page.locator("#title-config").inner_text().endswith("/configs/shop.toml")
    c.shot("02-configuration-shop-loaded")

    # A new file with a mistake: not saved, and worded exactly as `au config validate` words
    # the same file.
    page.fill("#new-name", "broken")
    page.fill("#new-desc", "a file with a mistake")
    page.click("form[action='/config/new'] button")
    page.wait_for_url(c.base + "/config?file=broken.toml")
    assert page.locator("#validation-ok").is_visible()
    broken = web.home / "configs" / "broken.toml"
    original = broken.read_text()
    text = page.locator("#text").input_value()
    page.fill("#text", text + '\n[[volume]]\npath = "relative/path"\n')
    # Child configurations are check boxes that edit the include line.
    page.check("input.include[value='shop.toml']")
    assert 'include = ["shop.toml"]' in page.locator("#text").input_value()
    page.click("#save")
    assert page.locator("#config-action-error").inner_text().startswith("Not saved: ")
    shown = page.locator("#validation-error").inner_text()
    assert "relative/path" in shown and broken.read_text() == original
    assert page.locator("#load").is_disabled()
    c.shot("03-configuration-validation-error")
    broken.write_text(page.locator("#text").input_value())
    cli = au(web.home, "config", "validate", str(broken))
    assert cli.returncode != 0 and cli.stderr.startswith(f"au: error: {shown}\n"), cli.stderr
    # Inherited children show greyed: a parent of broken.toml sees shop.toml through it.
    broken.write_text(original.replace("# include = [", 'include = ["shop.toml"]\n# x = ['))
    (web.home / "configs" / "top.toml").write_text('include = ["broken.toml"]\n')
    c.go("/config?file=top.toml")
    assert page.locator("input.include[value='broken.toml']").is_checked()
    inherited = page.locator("input.include[value='shop.toml']")
    assert inherited.is_checked() and inherited.is_disabled()
    c.shot("03b-configuration-inherited-child")

    # The field editors write TOML into the text; the API validates and saves it.
    c.go("/config")
    page.fill("#new-name", "fields.toml")
    page.click("form[action='/config/new'] button")
    page.wait_for_url(c.base + "/config?file=fields.toml")
    vol = web.home.parent / "opt-fields"
    page.click("#builder summary")
    page.fill("#b-description", "Upgrade set up with fields")
    page.click("#b-set-description")
    page.fill("#b-volume-path", str(vol))
    page.select_option("#b-volume-role", "system")
    page.click("#b-add-volume")
    page.fill("#b-service-name", "extra")
    page.fill("#b-service-command", f"{vol}/bin/extra --port 9")
    page.fill("#b-service-listen", "127.0.0.1:9")
    page.click("#b-add-service")
    page.fill("#b-action-name", "drain")
    page.fill("#b-action-file", f"{vol}/bin/drain")
    page.select_option("#b-action-control", "stop-application")
    page.select_option("#b-action-timing", "early")
    page.click("#b-add-action")
    for pattern in ("log/*.log", "etc/extra.conf"):
        page.fill("#b-backup-path", f"{vol}/{pattern}")
        page.click("#b-add-backup")
    page.click("#save")
    assert page.locator("#config-notice").inner_text().startswith("Saved "), page.locator(
        "main").inner_text()[:2000]
    assert page.locator("#validation-ok").is_visible()
    main = page.locator("main").inner_text()
    for expected in ("Upgrade set up with fields", str(vol), "extra", "listens on 127.0.0.1:9",
                     "drain: stop-application, early", f"{vol}/log/*.log",
                     f"{vol}/etc/extra.conf"):
        assert expected in main, expected
    c.shot("03c-configuration-edited-with-fields")

    # Upgrade Summary: the effective configuration in words and the steps of each request.
    c.go("/summary")
    main = page.locator("main").inner_text()
    assert "Upgrade the test shop" in main and "PrepareSplit" in main
    c.shot("04-upgrade-summary")
    with page.expect_navigation():
        page.click("#btn-plan")
    assert page.locator("#plan-out").is_visible(), page.locator("main").inner_text()
    assert "shop" in page.locator("#plan-out").inner_text()
    c.shot("04b-upgrade-summary-plan")

    # Session 1: check, split, merge, commit, finish.
    c.go("/upgrade")
    c.expect("Idle", {"check": "no disruption", "split": "no disruption"})
    assert c.bar()["partner"] == "None"
    c.shot("05-active-upgrade-idle")
    c.act("check", "Idle")
    c.expect("Idle", {"check": "no disruption", "split": "no disruption"})
    c.act("split", "Split")
    c.expect("Split", {"merge": "applications restart", "abort": "no disruption"})
    assert c.bar()["partner"] != "None"
    # A write outside the managed volumes on the Upgrade Side: not on Production, and listed
    # on the page (not kept) before the merge.
    marker = f"/root/au-console-{os.getpid()}"
    done = au(web.home, "exec", "--", "sh", "-c", f"echo kept-nowhere > {marker}")
    assert done.returncode == 0, done.stderr
    assert not Path(marker).exists()
    c.go("/upgrade")
    listed = page.locator("#side-writes-list").inner_text().splitlines()
    assert ["created", marker] in [line.split() for line in listed], listed
    assert "not kept" in page.locator("#side-writes-summary").inner_text()
    c.shot("06-active-upgrade-split")
    c.act("merge", "Merge")
    c.expect("Merge", {"commit": "no disruption (point of no return)",
                      "abort": "applications restart"})
    c.shot("07-active-upgrade-merge")
    c.act("commit", "Commit")
    c.expect("Commit", {"finish": "no disruption"})
    assert c.bar()["partner"] == "None"
    c.shot("08-active-upgrade-commit")
    c.act("finish", "Idle")
    c.expect("Idle", {"check": "no disruption", "split": "no disruption"})

    # Session 2: split fails on a readiness-check action (Broken, reason shown, Retry and
    # Abort offered); fixed, Retry completes it; then abort (no disruption) and finish.
    if web.adopted:
        web.fail_flag.write_text("")
        page.locator("#btn-split").click()
        page.wait_for_function("document.body.dataset.operationalState === 'Broken'",
                               timeout=120_000)
        bar = c.bar()
        assert bar["upgrade"] == "PrepareSplit" and bar["operational"] == "Broken", bar
        assert page.locator("#broken").is_visible()
        reason = page.locator("#broken-reason").inner_text()
        with web.api() as http:
            assert reason == http.get("/api/status").json()["reason"] and reason
        retry = page.locator("#btn-retry")
        assert retry.is_enabled() and retry.inner_text() == "Retry now: re-runs the failed step"
        for action, (on, label) in c.buttons().items():
            if action == "abort":
                assert on and label == "Abort now: no disruption", label
            else:
                assert not on and "not allowed in PrepareSplit / Broken" in label, label
        c.shot("09a-active-upgrade-broken-retry")
        web.fail_flag.unlink()
        retry.click()
        page.wait_for_function(
            "document.body.dataset.upgradeState === 'Split'"
            " && document.body.dataset.operationalState === 'Ready'", timeout=120_000)
        assert not page.locator("#broken").is_visible()
    else:
        c.act("split", "Split")
    c.expect("Split", {"merge": "applications restart", "abort": "no disruption"})
    c.act("abort", "Abort")
    c.expect("Abort", {"finish": "no disruption"})
    c.shot("09b-active-upgrade-aborted")
    c.act("finish", "Idle")
    c.expect("Idle", {"check": "no disruption", "split": "no disruption"})
    assert not page.locator("#broken").is_visible()
    if service_running:
        with web.api() as http:
            assert http.get("/api/status").status_code == 200
        svc = au(web.home, "service", "status", "shop", "--json")
        assert svc.returncode == 0 and json.loads(svc.stdout)["running"], svc.stderr

    # Activity Log: the tree, severities, filters, detail, save to file.
    c.go("/log")
    rows = page.locator("#log-table tbody tr")
    assert rows.count() > 20
    depths = {int(d) for d in page.eval_on_selector_all(
        "#log-table tbody tr", "rs => rs.map(r => r.dataset.depth)")}
    assert 0 in depths and max(depths) >= 2
    assert page.locator("tr.sev-notice").count() > 0
    c.shot("10-activity-log")
    # New entries arrive live, in tree order, while the page is open.
    shown_before = rows.count()
    with web.api() as http:
        assert http.post("/api/actions/check", json={}).status_code == 200
    web.wait_ready("check")
    page.wait_for_function("n => document.querySelectorAll('#log-table tbody tr').length > n",
                           arg=shown_before)
    page.wait_for_function("() => [...document.querySelectorAll('#log-table tbody tr')]"
                           ".some(r => r.textContent.includes('CheckReadiness completed'))")
    depths_live = page.eval_on_selector_all(
        "#log-table tbody tr", "rs => rs.map(r => [r.dataset.depth, r.textContent])")
    starts = [i for i, (_, t) in enumerate(depths_live) if "CheckReadiness started" in t]
    assert starts and depths_live[starts[-1]][0] == "0"
    assert depths_live[starts[-1] + 1][0] == "1", depths_live[starts[-1]:][:3]
    page.select_option("select[name=severity]", "notice")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**/log?severity=notice**")
    sevs = set(page.eval_on_selector_all(
        "#log-table tbody tr",
        "rs => rs.map(r => [...r.classList].filter(c => c.startsWith('sev-')).join(' '))"))
    assert sevs and sevs <= {"sev-notice", "sev-warning", "sev-error", "sev-critical"}, sevs
    c.shot("11-activity-log-filtered-notice")
    with page.expect_download() as dl:
        page.click("#save-json")
    saved = tmp_path / "log.json"
    dl.value.save_as(saved)
    entries = json.loads(saved.read_text())
    assert entries and all(e["severity"] != "info" for e in entries)
    # Detail of an entry: a custom action's output, exit value and duration when there is
    # one (it needs an adopted volume to lie on), else a step's facts.
    c.go("/log?event=action.start" if web.adopted else "/log?event=step.")
    page.locator("#log-table tbody tr a").first.click()
    page.wait_for_url("**/log/*")
    assert page.locator("#entry-h").is_visible()
    if web.adopted:
        facts = page.locator("dl.facts").inner_text()
        assert "Exit value\n0" in facts and "Duration (s)" in facts, facts
        assert "ready for CheckReadiness" in page.locator("pre.stdout").inner_text()
        assert "a line on stderr" in page.locator("pre.stderr").inner_text()
    c.shot("12-activity-log-entry-detail")

    # Narrow screen: the same page stays usable.
    narrow = context.new_page()
    narrow.set_viewport_size({"width": 380, "height": 800})
    n = Console(narrow, web, screenshots)
    n.go("/upgrade")
    assert narrow.locator("#btn-split").is_enabled()
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 380
    n.shot("13-active-upgrade-narrow")
    context.close()


def test_confirm_button_and_checkpoint_listing_in_the_web_console(
        browser: Any, web: Web, rollback: Rollback, screenshots: Path) -> None:
    """Merge with a confirmation window and a checkpointed data volume: the page shows the
    time left (ticking) and the writes since the checkpoint (refreshed without a status
    event); the Confirm button ends the window; the abort's question says where the data
    returns and where the writes since are kept."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    c = Console(page, web, screenshots)
    page.goto(c.base + "/login")
    page.fill("#token", web.token)
    page.click("button[type=submit]")
    page.wait_for_url(c.base + "/upgrade")
    with web.api() as http:
        assert http.post("/api/config/loaded", json={"path": rollback.name}).status_code == 200
    c.go("/upgrade")
    c.act("split", "Split")
    assert not page.locator("#btn-confirm").is_enabled()
    assert page.locator("#rollback").is_hidden()
    c.act("merge", "Merge")
    window = page.locator("#confirm-window")
    window.wait_for(state="visible")
    assert "left), or the merge is aborted automatically" in window.inner_text()
    first = window.inner_text()
    page.wait_for_function("t => document.getElementById('confirm-window').textContent !== t",
                           arg=first, timeout=10_000)  # the time left ticks
    button = page.locator("#btn-confirm")
    assert button.is_enabled() and button.inner_text().startswith("Confirm now")
    (rollback.data / "orders.log").write_text("order 1\norder 2\n")
    page.wait_for_function("document.getElementById('checkpoints').textContent"
                           ".includes('1 file(s) written since')", timeout=30_000)
    assert "changed  orders.log" in page.locator("#checkpoints").inner_text()
    c.shot("13-merge-confirm-window-checkpoint")
    button.click()
    page.wait_for_function("document.getElementById('confirm-window').textContent"
                           " === 'merge confirmed'", timeout=30_000)
    page.wait_for_function("document.getElementById('btn-confirm').disabled", timeout=30_000)
    page.locator("#btn-abort").click()
    question = page.locator("#confirm-question")
    question.wait_for(state="visible")
    text = question.inner_text()
    assert "data returns to the checkpoint of" in text, text
    assert "1 file(s) written since are kept in" in text, text
    page.locator("#confirm-yes").click()
    status = web.wait_ready("abort")
    assert status["upgrade_state"] == "Abort", status
    page.wait_for_function("document.getElementById('checkpoints').textContent"
                           ".includes('Writes saved aside by an abort')", timeout=30_000)
    c.shot("14-abort-saved-writes")
    assert (rollback.data / "orders.log").read_text() == "order 1\n"
    context.close()
