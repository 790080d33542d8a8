"""The chat messages in one place: cards, announcements, status, history, help, notices.

A facade over the modules that build them, so listeners and delivery import one name.
"""

from __future__ import annotations

from slack_sdk.models.views import View

from domain.text import Said
from handlers.blocks.announce import build_announcement
from handlers.blocks.contract import build_contract_card, build_status
from handlers.blocks.format import said_mrkdwn, shorten
from handlers.blocks.help import build_error, build_help, build_notice
from handlers.blocks.history import build_history
from handlers.blocks.kit import plain, section
from handlers.blocks.request import build_request_card
from handlers.blocks.work import build_work_card


def build_notice_modal(text: Said | str, *, title: str = "milestone-bot") -> View:
    """A notice as a small modal, for clicks that have no channel to answer in (App Home);
    rendered like `build_notice`."""
    return View(
        type="modal",
        title=plain(title[:24]),
        close=plain("OK"),
        blocks=[section(shorten(said_mrkdwn(text).strip() or "Done.", 3000), block_id="notice")],
    )


__all__ = [
    "build_announcement",
    "build_contract_card",
    "build_error",
    "build_help",
    "build_history",
    "build_notice",
    "build_notice_modal",
    "build_request_card",
    "build_status",
    "build_work_card",
]
