"""Headless Chromium on the sandbox page, as a person would use it.

One driver for everything that looks at the page in a real browser: the README's
picture (`sandbox.picture`, run by `scripts/picture`) and the browser tests in
tests/sandbox. It needs Playwright for Python (the `test` extras) and Debian's Chromium
at /usr/bin/chromium (`apt-get install chromium fonts-noto-color-emoji`; without the
emoji font the bot's emoji show as empty boxes). `playwright install` can't download a
browser on every machine, so Playwright drives that Chromium instead of its own.

Playwright is imported only inside these functions: the sandbox itself runs without it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    # Without these Chromium keeps trying to reach outside hosts.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class Screen:
    """A window size the page must read well at."""

    name: str
    width: int
    height: int


WIDE = Screen("wide", 1280, 860)  # a laptop; the README's picture
MEDIUM = Screen("medium", 760, 900)  # a small window or a tablet: the sidebar folds up
NARROW = Screen("narrow", 390, 844)  # a phone
SCREENS = (WIDE, MEDIUM, NARROW)


EMOJI_FONT = "Noto Color Emoji"
APT_PACKAGES = "chromium fonts-noto-color-emoji"


@dataclass(frozen=True)
class Missing:
    """Something this machine lacks to drive the browser, and the command that adds it."""

    what: str
    fix: str


def missing_parts(*, emoji: bool = False) -> list[Missing]:
    """What this machine lacks to drive the browser (empty when it can); with `emoji`,
    also the colour emoji font (a picture without it shows empty boxes)."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append(Missing("Playwright for Python", "pip install -e '.[test]'"))
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        missing.append(Missing(f"Chromium at {CHROMIUM}", f"apt-get install -y {APT_PACKAGES}"))
    elif emoji and not has_font(EMOJI_FONT):
        missing.append(
            Missing(f"the {EMOJI_FONT} font", "apt-get install -y fonts-noto-color-emoji")
        )
    return missing


def has_font(family: str) -> bool:
    """Whether fontconfig (where Chromium finds fonts on Linux) knows `family`."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    listed = subprocess.run(
        [fc_list, family, "family"], capture_output=True, text=True, timeout=30, check=False
    )
    return family.lower() in listed.stdout.lower()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, for as long as the `with` lasts."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Browser, url: str, screen: Screen, *, as_user: str | None = None) -> Page:
    """A new tab of `screen`'s size on the sandbox page at `url`, as `as_user` (an id)."""
    context = browser.new_context(
        viewport={"width": screen.width, "height": screen.height},
        timezone_id="Europe/Berlin",
        locale="en-US",
    )
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(url + ("?" + urlencode({"as": as_user}) if as_user else ""))
    tab.locator("#people input:checked").wait_for(state="attached")
    return tab


def horizontal_overflow(tab: Page) -> int:
    """How many pixels the page is wider than the window (0: nothing to scroll sideways)."""
    return int(
        tab.evaluate(
            "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - window.innerWidth"
        )
    )


class Player:
    """Plays one person in the page: the person switch, the composer, the buttons."""

    def __init__(self, tab: Page, real_name: str) -> None:
        self.tab = tab
        self.real_name = real_name

    def become(self) -> Player:
        """Pick this person in the switch (the left column, or the row at the top)."""
        from playwright.sync_api import expect

        choice = self.tab.locator("label.person", has_text=self.real_name)
        choice.click()
        expect(choice.locator("input")).to_be_checked()
        return self

    def type(self, command: str) -> None:
        box = self.tab.locator("#composer-input")
        box.fill(command)
        box.press("Enter")

    def message(self, text: str) -> Locator:
        """The newest message in the channel containing `text`."""
        return self.tab.locator("#timeline article.msg", has_text=text).last

    def card(self, text: str) -> Locator:
        """The newest message containing `text`, pinned by its ts: it stays the same
        message when the bot updates it in place."""
        ts = self.message(text).get_attribute("data-ts")
        return self.tab.locator(f'#timeline article.msg[data-ts="{ts}"]')

    def with_button(self, label: str) -> Locator:
        """The newest message offering a button whose label starts with `label`."""
        button = self.tab.get_by_role("button", name=label)
        return self.tab.locator("#timeline article.msg").filter(has=button).last

    def press(self, message: Locator, label: str) -> None:
        message.get_by_role("button", name=label).first.click()
