"""A whole negotiation in headless Chromium, through the sandbox page and the real bot.

Needs `playwright` (pip) and Debian's Chromium at /usr/bin/chromium (`playwright install`
can't download a browser here). Under CI (env `CI` set) a missing one fails the test;
elsewhere it skips. Screenshots go to test-artifacts/sandbox/; with SANDBOX_SCREENSHOT=1
the README's docs/sandbox.png is refreshed too.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.settings import Settings
from sandbox.demo import seed_demo
from sandbox.sandbox import Sandbox
from sandbox.web import PageServer
from tests.sandbox.conftest import contracts

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "sandbox"
README_SCREENSHOT = REPO / "docs" / "sandbox.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
SLOW_MS = 40_000  # moving the clock two weeks runs 336 sweeps


def _need_a_browser() -> None:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{message}; under CI it must run")
        pytest.skip(message)


@pytest.fixture
def page(
    request: pytest.FixtureRequest, tmp_path: Path, clean_env: None
) -> Iterator[tuple[Page, Sandbox]]:
    _need_a_browser()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)
    with Sandbox(Settings(_env_file=None), database=tmp_path / "sandbox.sqlite3") as sandbox:
        if getattr(request, "param", None) == "demo":
            seed_demo(sandbox)
        server = PageServer(sandbox, port=0)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                context = browser.new_context(
                    viewport={"width": 1280, "height": 860},
                    timezone_id="Europe/Berlin",
                    locale="en-US",
                )
                tab = context.new_page()
                tab.set_default_timeout(TIMEOUT_MS)
                errors: list[str] = []
                tab.on("pageerror", lambda error: errors.append(str(error)))
                tab.goto(server.url)
                yield tab, sandbox
                report = getattr(request.node, "report_call", None)
                if report is not None and report.failed:
                    tab.screenshot(path=str(ARTIFACTS / "failure.png"))
                browser.close()
                assert not errors, f"the page threw: {errors}"
        finally:
            server.stop()


class Person:
    """Acts in the page like a person would: the switch, the composer, the buttons."""

    def __init__(self, tab: Page, real_name: str) -> None:
        self.tab = tab
        self.real_name = real_name

    def become(self) -> Person:
        from playwright.sync_api import expect

        self.tab.locator("label.person", has_text=self.real_name).click()
        expect(
            self.tab.locator("label.person", has_text=self.real_name).locator("input")
        ).to_be_checked()
        return self

    def type(self, command: str) -> None:
        box = self.tab.locator("#composer-input")
        box.fill(command)
        box.press("Enter")

    def message(self, text: str) -> Locator:
        """The newest message in the channel containing `text`."""
        return self.tab.locator("#timeline article.msg", has_text=text).last

    def with_button(self, label: str) -> Locator:
        """The newest message offering a button whose label starts with `label`."""
        button = self.tab.get_by_role("button", name=label)
        return self.tab.locator("#timeline article.msg").filter(has=button).last

    def press(self, message: Locator, label: str) -> None:
        message.get_by_role("button", name=label).first.click()

    def shot(self, name: str) -> None:
        self.tab.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _wait(condition: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.browser
def test_a_whole_negotiation_in_the_browser(page: tuple[Page, Sandbox]) -> None:
    from playwright.sync_api import expect

    tab, sandbox = page
    expect.set_options(timeout=TIMEOUT_MS)
    carol = Person(tab, "Carol Chen")
    fred = Person(tab, "Fred Fischer")
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
    carol.shot("1-modal-field-error")
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
    card_ts = carol.message("Change request #1").get_attribute("data-ts")
    request = tab.locator(f'#timeline article.msg[data-ts="{card_ts}"]')
    expect(request.get_by_role("button", name="Decline")).to_be_visible()
    carol.shot("2-change-request")
    if os.environ.get("SANDBOX_SCREENSHOT"):
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(README_SCREENSHOT))
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
    fred.shot("3-automatic-release")
    milestone = contracts(sandbox)[0]["milestones"][0]
    assert milestone["status"] == "released" and milestone["released_automatically"]

    # Fred's Home shows the contract and what waits for whom.
    tab.get_by_role("link", name="milestone-bot Home").click()
    expect(tab.locator("#home")).to_contain_text("Website redesign")
    fred.shot("4-home")


@pytest.mark.browser
@pytest.mark.parametrize("page", ["demo"], indirect=True)
def test_the_readme_walk_through_works_on_the_demo(page: tuple[Page, Sandbox]) -> None:
    """README, Quick start: accept, submit as Fred, +14 days, paid automatically."""
    from playwright.sync_api import expect

    tab, sandbox = page
    expect.set_options(timeout=TIMEOUT_MS)
    carol = Person(tab, "Carol Chen")
    fred = Person(tab, "Fred Fischer")
    card_ts = carol.message("Change request #1").get_attribute("data-ts")
    request = tab.locator(f'#timeline article.msg[data-ts="{card_ts}"]')
    carol.press(request, "Accept")
    expect(request).to_contain_text("Accepted")
    fred.become()
    fred.type('/milestone submit "Designs are in Figma"')
    expect(fred.with_button("Approve")).to_contain_text("Designs are in Figma")
    tab.get_by_role("button", name="+14 days").click()
    expect(fred.message("Paid automatically")).to_be_visible(timeout=SLOW_MS)
    (contract,) = contracts(sandbox)
    assert contract["milestones"][1]["amount_minor"] == 300000
    assert contract["milestones"][0]["released_automatically"]
