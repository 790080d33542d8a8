"""`scripts/picture`: the README's picture, taken from the real sandbox.

Starts the sandbox as `milestone-bot sandbox --demo` does (the real bot, the local
Slack, the demo typed through the bot), opens the page as Carol in headless Chromium
(`sandbox.browser`), checks that the card on screen is the demo's waiting change
request with its amounts and Accept / Decline buttons, and saves a screenshot. So the
picture cannot drift from the demo, and tests/sandbox checks that the demo is what the
README says.

    python -m sandbox.picture [--out docs/sandbox.png] [--width 1280] [--height 860]

Sandbox time starts at a fixed instant, so a new picture differs from the last one only
where the page does.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import Settings
from domain.money import format_amount

from .browser import WIDE, Player, Screen, chromium, horizontal_overflow, missing_parts, open_page
from .clock import OffsetClock
from .demo import WaitingRequest, seed_demo, waiting_request
from .people import CLIENT
from .sandbox import Sandbox
from .web import PageServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

DEFAULT_OUT = Path("docs/sandbox.png")
# A Monday morning in Carol's New York: the page shows her time.
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class PictureError(RuntimeError):
    """The page did not show what the picture must show."""


def clock_from(start: datetime) -> OffsetClock:
    """Sandbox time that starts at `start` and runs at the normal pace."""
    began = time.monotonic()
    return OffsetClock(lambda: start + timedelta(seconds=time.monotonic() - began))


def card_texts(request: WaitingRequest) -> list[str]:
    """What the request's card must show (besides its Accept and Decline buttons)."""
    return [
        f"Change request #{request.number}",
        request.contract_title,
        f"Edit milestone {request.milestone}",
        format_amount(request.amount_before_minor, request.currency),
        format_amount(request.amount_after_minor, request.currency),
    ]


def take_picture(out: Path, screen: Screen = WIDE) -> Path:
    """Start a demo sandbox, look at it as Carol at `screen`'s size, save a PNG to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with Sandbox(Settings(_env_file=None), clock=clock_from(START)) as sandbox:
        seed_demo(sandbox)
        request = waiting_request(sandbox)
        if request.proposed_by == CLIENT.id:
            raise PictureError("the demo's waiting request must be for the client to answer")
        server = PageServer(sandbox, port=0)
        try:
            with chromium() as browser:
                tab = open_page(browser, server.url, screen, as_user=CLIENT.id)
                _show_the_request(tab, request)
                # Nobody is typing: no focus ring, no list of commands to pick from.
                tab.evaluate("document.activeElement && document.activeElement.blur()")
                tab.evaluate("document.fonts.ready")
                overflow = horizontal_overflow(tab)
                if overflow > 0:
                    raise PictureError(f"the page is {overflow}px wider than {screen.width}px")
                tab.screenshot(path=str(out))
        finally:
            server.stop()
    return out


def _show_the_request(tab: Page, request: WaitingRequest) -> None:
    """Scroll to the request's card after checking it says what it must."""
    from playwright.sync_api import expect

    try:
        card = Player(tab, CLIENT.real_name).card(f"Change request #{request.number}")
        for text in card_texts(request):
            expect(card).to_contain_text(text)
        for label in ("Accept", "Decline"):
            expect(card.get_by_role("button", name=label)).to_be_visible()
    except AssertionError as error:
        message = f"the change request's card is not as the demo left it: {error}"
        raise PictureError(message) from None
    card.get_by_role("button", name="Decline").scroll_into_view_if_needed()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/picture",
        description="Take the README's picture of the sandbox (the demo, seen by Carol).",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--width", type=int, default=WIDE.width, help="window width (px)")
    parser.add_argument("--height", type=int, default=WIDE.height, help="window height (px)")
    args = parser.parse_args(argv)
    missing = missing_parts(emoji=True)
    if missing:
        needs = " and ".join(m.what for m in missing)
        fixes = " && ".join(m.fix for m in missing)
        sys.stderr.write(f"scripts/picture needs {needs}; run: {fixes}\n")
        return 2
    for name in ("apscheduler", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    screen = Screen("custom", args.width, args.height)
    try:
        out = take_picture(args.out, screen)
    except PictureError as error:
        sys.stderr.write(f"scripts/picture: {error}\n")
        return 1
    sys.stdout.write(f"Wrote {out} ({screen.width}x{screen.height})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
