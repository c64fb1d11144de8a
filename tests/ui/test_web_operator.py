"""The web console as an operator relies on it, in Debian's headless Chromium (Playwright):

- progress moves during a long step (a readiness-check action that reports its parts and
  waits for the test between them): the bar never goes back and never reads 100 % before
  the request ended;
- Commit (the point of no return) and Abort from Merge ask for confirmation; Cancel sends
  nothing;
- the Activity Log opens at its newest entry and follows new ones; an entry's detail names
  its facts in words;
- screenshots of Idle, Split, Merge and Broken on a desktop and on a 390 px wide phone go to
  ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from .conftest import Web
from .test_web_browser import Console, browser  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
NEWEST_SHOWN = """() => {
  const s = document.getElementById('log-scroll'), t = document.getElementById('log-table');
  const rows = [...t.querySelectorAll('tbody tr')];
  if (!rows.length) return false;
  const newest = Math.max(...rows.map(r => Number(r.dataset.id)));
  const row = t.querySelector(`tr[data-id="${newest}"]`);
  const a = s.getBoundingClientRect(), b = row.getBoundingClientRect();
  return b.top >= a.top - 1 && b.bottom <= a.bottom + 1;
}"""


def login(page: Any, web: Web) -> None:
    page.goto(web.url.rstrip("/") + "/login")
    page.fill("#token", web.token)
    page.click("button[type=submit]")
    page.wait_for_url("**/upgrade")


def shots(desktop: Console, phone: Console, state: str, name: str = "") -> None:
    """The Active Upgrade page in ``state`` on both screens: web-NAME-desktop/phone.png."""
    for c, kind in ((desktop, "desktop"), (phone, "phone")):
        c.go("/upgrade")
        c.page.wait_for_function("s => document.body.dataset.upgradeState === s", arg=state)
        if kind == "phone":
            assert c.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        c.shot(f"web-{(name or state).lower()}-{kind}")


def wait_state(c: Console, upgrade: str, operational: str = "Ready") -> None:
    c.page.wait_for_function(
        "([u, o]) => document.body.dataset.upgradeState === u"
        " && document.body.dataset.operationalState === o", arg=[upgrade, operational],
        timeout=120_000)


def test_operator_guard_rails_progress_and_log(browser: Any, web: Web,  # noqa: F811
                                               screenshots: Path) -> None:
    if not web.adopted:
        pytest.skip("needs the adopted volume the readiness-check action lies on")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    login(page, web)
    c = Console(page, web, screenshots)
    phone_page = context.new_page()
    phone_page.set_viewport_size(PHONE)
    p = Console(phone_page, web, screenshots)
    with web.api() as http:
        loaded = http.post("/api/config/loaded",
                           json={"path": str(web.home / "configs" / "shop.toml")})
        assert loaded.status_code == 200, loaded.text
    shots(c, p, "Idle")

    # Progress during a long step: each part of the action moves the bar, never back and
    # never to 100 % before the end.
    c.go("/upgrade")
    web.gates.mkdir()
    try:
        page.click("#btn-check")
        page.wait_for_function("document.getElementById('sb-detail').textContent"
                               ".includes('part 1 of 4')", timeout=60_000)
        first = float(page.locator("#sb-progress").get_attribute("value") or 0)
        assert 0 < first < 100
        assert "CheckReadiness" in page.locator("#sb-where").inner_text()
        c.shot("web-progress-long-step")
        for part in (1, 2, 3):
            (web.gates / str(part)).write_text("")
            page.wait_for_function(
                "n => document.getElementById('sb-detail').textContent"
                ".includes(`part ${n} of 4`)", arg=part + 1, timeout=60_000)
            now = float(page.locator("#sb-progress").get_attribute("value") or 0)
            assert first < now < 100, (first, now)
            first = now
    finally:
        for part in (1, 2, 3, 4):
            (web.gates / str(part)).write_text("")
    web.wait_ready("check")
    wait_state(c, "Idle")
    seen = [pct for req, pct in page.evaluate("window.auProgressSeen()")
            if req == "CheckReadiness"]
    assert seen and all(a <= b for a, b in itertools.pairwise(seen)), seen
    assert max(seen) < 100, seen
    for part in (1, 2, 3, 4):
        (web.gates / str(part)).unlink()
    web.gates.rmdir()

    # Split and Merge.
    c.go("/upgrade")
    page.click("#btn-split")
    web.wait_ready("split")
    shots(c, p, "Split")
    page.click("#btn-merge")
    web.wait_ready("merge")
    shots(c, p, "Merge")

    # Abort from Merge asks; Cancel sends nothing.
    page.click("#btn-abort")
    dialog = page.locator("#confirm")
    assert dialog.is_visible()
    assert "Abort from Merge restarts the applications" in page.locator(
        "#confirm-question").inner_text()
    c.shot("web-merge-confirm-abort")
    page.click("#confirm-no")
    assert not dialog.is_visible()
    # (the dialog's close event, and so the notice, comes after the click returns)
    page.wait_for_function(
        "document.getElementById('notice').innerText.includes('Abort not sent')",
        timeout=30_000)
    with web.api() as http:
        s = http.get("/api/status").json()
    assert (s["upgrade_state"], s["operational_state"], s["action"]) == (
        "Merge", "Ready", "merge")
    # Commit says it is the point of no return, and asks.
    label = page.locator("#btn-commit").inner_text()
    assert label == "Commit now: no disruption (point of no return)", label
    page.click("#btn-commit")
    assert "point of no return" in page.locator("#confirm-question").inner_text()
    c.shot("web-merge-confirm-commit")
    page.click("#confirm-no")
    with web.api() as http:
        assert http.get("/api/status").json()["upgrade_state"] == "Merge"
    page.click("#btn-commit")
    page.click("#confirm-yes")
    web.wait_ready("commit")
    wait_state(c, "Commit")
    page.click("#btn-finish")
    web.wait_ready("finish")

    # Broken: the readiness-check action fails the split.
    web.fail_flag.write_text("")
    c.go("/upgrade")
    page.click("#btn-split")
    wait_state(c, "PrepareSplit", "Broken")
    shots(c, p, "PrepareSplit", "broken")

    # The log opens at the newest entry (the error that broke the split is there), and
    # follows new entries while "Follow" is ticked.
    c.go("/log")
    assert page.locator("#log-follow").is_checked()
    page.wait_for_function(NEWEST_SHOWN)
    assert page.evaluate("document.getElementById('log-scroll').scrollTop") > 0
    newest_text = page.locator("tr.newest").inner_text()
    assert newest_text, "no row marked newest"
    c.shot("web-log-broken-newest")
    p.go("/log")
    phone_page.wait_for_function(NEWEST_SHOWN)
    p.shot("web-log-broken-newest-phone")
    before = page.locator("#log-table tbody tr").count()
    web.fail_flag.unlink()
    page.goto(c.base + "/log")
    page.wait_for_function(NEWEST_SHOWN)
    with web.api() as http:
        assert http.post("/api/actions/abort", json={}).status_code == 200
    web.wait_ready("abort")
    page.wait_for_function("n => document.querySelectorAll('#log-table tbody tr').length > n",
                           arg=before)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#log-table tbody tr')]"
        ".some(r => r.textContent.includes('abort completed'))", timeout=60_000)
    page.wait_for_function(NEWEST_SHOWN)
    with web.api() as http:
        assert http.post("/api/actions/finish", json={}).status_code == 200
    web.wait_ready("finish")

    # The detail of the entry that broke the split: its error in words, what to do.
    c.go("/log?event=request.broken")
    page.locator("#log-table tbody tr a").last.click()
    page.wait_for_url("**/log/*")
    facts = page.locator("dl.facts").inner_text()
    assert "Error\nActionError" in facts or "Error\n" in facts, facts
    assert "What to do" in facts and "Step" in facts, facts
    c.shot("web-log-entry-broken")
    context.close()
