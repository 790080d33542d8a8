"""The sandbox page in headless Chromium, through the real bot: a whole negotiation, the
README's walk-through, the page on a phone and at other widths, and the README's picture.

Drives the browser with `sandbox.browser` (the same driver as `scripts/picture`): needs
`playwright` (pip) and Debian's Chromium at /usr/bin/chromium (`playwright install` can't
download a browser here). Under CI (env `CI` set) a missing one fails the test;
elsewhere it skips. Screenshots go to test-artifacts/sandbox/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.settings import Settings
from sandbox.browser import (
    MEDIUM,
    NARROW,
    TIMEOUT_MS,
    WIDE,
    Player,
    Screen,
    chromium,
    horizontal_overflow,
    missing_parts,
    open_page,
)
from sandbox.demo import seed_demo
from sandbox.people import CLIENT
from sandbox.sandbox import Sandbox
from sandbox.web import PageServer
from tests.conftest import missing_dependency
from tests.sandbox.conftest import PROXY_VARS, SETTINGS_VARS, contracts, png_size

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "sandbox"
SLOW_MS = 40_000  # moving the clock two weeks runs 336 sweeps


def _need_a_browser(*, emoji: bool = False) -> None:
    missing = missing_parts(emoji=emoji)
    if missing:
        missing_dependency(
            "the browser test needs " + " and ".join(m.what for m in missing),
            fix=" && ".join(m.fix for m in missing),
        )


@dataclass
class Site:
    """A running sandbox, its page server and a browser to open tabs on it."""

    sandbox: Sandbox
    url: str
    browser: Browser
    tabs: list[Page] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what the page threw

    def open(self, screen: Screen = WIDE, *, as_user: str | None = None) -> Page:
        from playwright.sync_api import expect

        tab = open_page(self.browser, self.url, screen, as_user=as_user)
        tab.on("pageerror", lambda error: self.errors.append(str(error)))
        self.tabs.append(tab)
        expect.set_options(timeout=TIMEOUT_MS)
        return tab


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path, clean_env: None) -> Iterator[Site]:
    """`@pytest.mark.parametrize("site", ["demo"], indirect=True)` starts with the demo."""
    _need_a_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("/", "-")
    (ARTIFACTS / f"failure-{name}.png").unlink(missing_ok=True)
    with Sandbox(Settings(_env_file=None), database=tmp_path / "sandbox.sqlite3") as sandbox:
        if getattr(request, "param", None) == "demo":
            seed_demo(sandbox)
        server = PageServer(sandbox, port=0)
        try:
            with chromium() as browser:
                running = Site(sandbox, server.url, browser)
                yield running
                report = getattr(request.node, "report_call", None)
                if report is not None and report.failed and running.tabs:
                    running.tabs[-1].screenshot(path=str(ARTIFACTS / f"failure-{name}.png"))
                assert not running.errors, f"the page threw: {running.errors}"
        finally:
            server.stop()


def shot(tab: Page, name: str) -> None:
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _wait(condition: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def assert_no_sideways_scroll(tab: Page) -> None:
    overflow = horizontal_overflow(tab)
    width = tab.evaluate("window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the {width}px window"


def assert_within_window(tab: Page, selector: str) -> None:
    """Every element matching `selector` is inside the window horizontally."""
    width = tab.evaluate("window.innerWidth")
    for box in tab.locator(selector).evaluate_all(
        "nodes => nodes.map(n => { const r = n.getBoundingClientRect();"
        " return {left: r.left, right: r.right, text: n.innerText}; })"
    ):
        assert 0 <= box["left"] and box["right"] <= width, f"{box['text']!r} sticks out: {box}"


@pytest.mark.browser
def test_a_whole_negotiation_in_the_browser(site: Site) -> None:
    from playwright.sync_api import expect

    tab = site.open()
    sandbox = site.sandbox
    carol = Player(tab, "Carol Chen")
    fred = Player(tab, "Fred Fischer")
    expect(tab.locator("#timeline")).to_contain_text("This is the very beginning of #deals")

    # Carol creates the contract and adds a milestone through the form.
    carol.type('/milestone new "Website redesign" client=@carol freelancer=@fred')
    expect(carol.message("created contract 1")).to_be_visible()
    expect(tab.locator(".msg.ephemeral", has_text="Contract 1")).to_contain_text(
        "Only visible to you"
    )
    carol.type("/milestone add")
    modal = tab.locator("#modal")
    expect(modal).to_be_visible()
    expect(modal.locator("#modal-title")).to_have_text("Add milestone")
    modal.get_by_label("Title").fill("Design")
    modal.get_by_label("Amount (USD)").fill("lots")
    modal.get_by_label("Due date").fill("2030-01-31")
    modal.get_by_label("Description").fill("Wireframes and *visual* design")
    modal.get_by_role("button", name="Add").click()
    amount = modal.locator(".field", has=tab.get_by_label("Amount (USD)"))
    expect(amount.locator(".field-error")).to_be_visible()
    expect(modal.get_by_label("Title")).to_have_value("Design")  # what was typed stays
    shot(tab, "1-modal-field-error")
    modal.get_by_label("Amount (USD)").fill("1500")
    modal.get_by_role("button", name="Add").click()
    expect(modal).to_be_hidden()
    expect(carol.message("added milestone 1")).to_be_visible()
    carol.type('/milestone add "Build" 2500 2030-03-01 "Front end and CMS"')
    expect(carol.message("added milestone 2")).to_be_visible()
    carol.type("/milestone start")
    expect(carol.message("agreed to the terms for the client side")).to_be_visible()

    # Fred agrees on the card; Carol funds milestone 1 (a confirm dialog names the amount).
    fred.become()
    fred.press(fred.with_button("Agree"), "Agree")
    expect(fred.message("is active: both sides agreed")).to_be_visible()
    carol.become()
    carol.press(carol.with_button("Fund milestone 1"), "Fund milestone 1")
    confirm = tab.locator("#confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Fund milestone 1?")
    confirm.get_by_role("button", name="Fund $1,500.00").click()
    expect(carol.message("is funded")).to_be_visible()

    # Fred proposes more money for the funded milestone: a change request.
    fred.become()
    fred.type('/milestone edit 1 amount=2000 message="Two more page templates than planned"')
    request = fred.message("Change request #1")
    expect(request).to_contain_text("$2,000.00")
    expect(request.get_by_role("button", name="Withdraw")).to_be_visible()

    # Carol accepts it from the card and confirms the escrow top-up.
    carol.become()
    request = carol.card("Change request #1")
    expect(request.get_by_role("button", name="Decline")).to_be_visible()
    shot(tab, "2-change-request")
    carol.press(request, "Accept")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Accept, deposit $500.00").click()
    expect(request).to_contain_text("Accepted")  # the same message, updated in place
    expect(request.get_by_role("button", name="Accept")).to_have_count(0)
    _wait(lambda: contracts(sandbox)[0]["escrow"]["funded_minor"] == 200000, "the top-up")

    # Fred submits; fifteen days later the money is released automatically.
    fred.become()
    fred.type('/milestone submit "Designs are in Figma"')
    expect(fred.with_button("Approve")).to_contain_text("Designs are in Figma")
    tab.get_by_role("button", name="+14 days").click()  # time passes in hourly sweeps
    expect(tab.locator("#clock-offset")).to_contain_text("14 days ahead", timeout=SLOW_MS)
    tab.get_by_role("button", name="+1 day").click()
    expect(tab.locator("#clock-offset")).to_contain_text("15 days ahead", timeout=SLOW_MS)
    expect(fred.message("Paid automatically")).to_be_visible()
    shot(tab, "3-automatic-release")
    milestone = contracts(sandbox)[0]["milestones"][0]
    assert milestone["status"] == "released" and milestone["released_automatically"]

    # Fred's Home shows the contract and what waits for whom.
    tab.get_by_role("link", name="milestone-bot Home").click()
    expect(tab.locator("#home")).to_contain_text("Website redesign")
    shot(tab, "4-home")


def _contract_in_progress(site: Site) -> dict[str, Any]:
    (contract,) = [c for c in contracts(site.sandbox) if c["status"] != "closed"]
    return contract


@pytest.mark.browser
@pytest.mark.parametrize("site", ["demo"], indirect=True)
def test_the_readme_walk_through_works_on_the_demo(site: Site) -> None:
    """README, Quick start: accept, submit as Fred, +14 days, paid automatically."""
    from playwright.sync_api import expect

    tab = site.open()
    carol = Player(tab, "Carol Chen")
    fred = Player(tab, "Fred Fischer")
    request = carol.card("Change request #1")
    carol.press(request, "Accept")
    expect(request).to_contain_text("Accepted")
    fred.become()
    fred.type('/milestone submit "Designs are in Figma"')
    expect(fred.with_button("Approve")).to_contain_text("Designs are in Figma")
    tab.get_by_role("button", name="+14 days").click()
    expect(fred.message("Paid automatically")).to_be_visible(timeout=SLOW_MS)
    contract = _contract_in_progress(site)
    assert contract["milestones"][1]["amount_minor"] == 300000
    assert contract["milestones"][0]["released_automatically"]


@pytest.mark.browser
@pytest.mark.parametrize("site", ["demo"], indirect=True)
def test_on_a_phone_people_switch_at_the_top_and_a_click_updates_the_card(site: Site) -> None:
    from playwright.sync_api import expect

    tab = site.open(NARROW)
    carol = Player(tab, "Carol Chen")
    fred = Player(tab, "Fred Fischer")
    milo = Player(tab, "Milo Moore")
    assert_no_sideways_scroll(tab)
    # No left column: every person is in the row at the top, within the window.
    expect(tab.locator(".sidebar-hint")).to_be_hidden()
    assert_within_window(tab, "label.person")
    assert_within_window(tab, ".clock-button")
    tab.locator("#timeline").evaluate("t => t.scrollTop = 0")
    intro = tab.locator("#timeline .empty")
    expect(intro).to_contain_text("Switch person at the top", use_inner_text=True)
    expect(intro).not_to_contain_text("on the left", use_inner_text=True)
    shot(tab, "phone-1-demo")

    # Milo, the agency's member, was told what he may not do; the others weren't.
    milo.become()
    expect(milo.message("Only an agency manager")).to_contain_text("can propose changes")
    assert_no_sideways_scroll(tab)
    fred.become()
    expect(tab.locator("#timeline")).not_to_contain_text("Only an agency manager")

    carol.become()
    request = carol.card("Change request #1")
    expect(request.get_by_role("button", name="Decline")).to_be_visible()
    assert_within_window(tab, "#timeline .b-actions .btn")
    carol.press(request, "Accept")
    expect(request).to_contain_text("Accepted")  # the same message, updated in place
    expect(request.get_by_role("button", name="Accept")).to_have_count(0)
    _wait(lambda: _contract_in_progress(site)["milestones"][1]["amount_minor"] == 300000, "it")
    assert_no_sideways_scroll(tab)
    shot(tab, "phone-2-accepted")

    # A typo in the command itself: Slack's answer, and the exact text to send instead.
    carol.type("/milestne help")
    toast = tab.locator(".toast.error").last
    expect(toast).to_have_text(
        "/milestne is not a valid command. Did you mean /milestone help?", use_inner_text=True
    )
    expect(tab.locator("#composer-input")).to_have_value("/milestne help")
    tab.get_by_role("link", name="milestone-bot").click()
    expect(tab.locator("#home")).to_contain_text("Website redesign")
    assert_no_sideways_scroll(tab)
    shot(tab, "phone-3-home")


@pytest.mark.browser
@pytest.mark.parametrize("site", ["demo"], indirect=True)
@pytest.mark.parametrize("screen", [MEDIUM, WIDE], ids=lambda s: f"{s.width}px")
def test_the_demo_reads_well_at_other_widths(site: Site, screen: Screen) -> None:
    from playwright.sync_api import expect

    tab = site.open(screen, as_user=CLIENT.id)
    carol = Player(tab, "Carol Chen")
    request = carol.card("Change request #1")
    expect(request.get_by_role("button", name="Accept")).to_be_visible()
    assert_no_sideways_scroll(tab)
    assert_within_window(tab, "label.person")
    assert_within_window(tab, ".clock-button")
    assert_within_window(tab, "#timeline .b-actions .btn")
    column = screen.width > MEDIUM.width  # the sidebar is a column only on wide windows
    tab.locator("#timeline").evaluate("t => t.scrollTop = 0")
    intro = tab.locator("#timeline .empty")
    expect(intro).to_contain_text("on the left" if column else "at the top", use_inner_text=True)
    shown = "at the top" if column else "on the left"
    expect(intro).not_to_contain_text(shown, use_inner_text=True)
    role = tab.locator(".person-role").first
    if column:
        expect(role).to_be_visible()
    else:
        expect(role).to_be_hidden()  # the row at the top has no room; the title says it
    maya = Player(tab, "Maya Menon").become()
    expect(maya.message("Sent change request #1")).to_be_visible()
    tab.get_by_role("link", name="milestone-bot").click()
    expect(tab.locator("#home")).to_contain_text("Brand refresh")
    assert_no_sideways_scroll(tab)
    shot(tab, f"home-{screen.width}")


@pytest.mark.browser
def test_the_picture_script_takes_the_readme_picture(tmp_path: Path, clean_env: None) -> None:
    """`scripts/picture` in this test's virtual environment, into a temporary file, on a
    phone's screen (the README's own is 1280 px wide)."""
    _need_a_browser(emoji=True)
    screen = NARROW
    out = tmp_path / "sandbox.png"
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS + PROXY_VARS}
    env["VENV"] = sys.prefix
    done = subprocess.run(
        [
            str(REPO / "scripts" / "picture"),
            "--out",
            str(out),
            "--width",
            str(screen.width),
            "--height",
            str(screen.height),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Wrote {out}" in done.stdout
    assert png_size(out) == (screen.width, screen.height)
