"""Block Kit builders: pure `build_*` functions returning `slack_sdk.models` objects.

Messages are `Message(text, blocks)` (`.as_kwargs()` for the Web API); modals and
Home are `slack_sdk.models.views.View`. Nothing here talks to Slack or the database.
This package is the one facade: listeners and the delivery import builders from here.
"""

from handlers.blocks.announce import build_announcement
from handlers.blocks.contract import build_contract_card, build_status
from handlers.blocks.help import build_error, build_help, build_notice, build_notice_modal
from handlers.blocks.history import build_history
from handlers.blocks.home import build_home
from handlers.blocks.impact import Impact, request_impact
from handlers.blocks.message import Message
from handlers.blocks.modals import (
    build_add_milestone_modal,
    build_decline_modal,
    build_edit_milestone_modal,
    build_new_contract_modal,
    build_propose_changes_modal,
    build_request_changes_modal,
    new_contract_errors,
    read_add_milestone,
    read_decline,
    read_edit_milestone,
    read_new_contract,
    read_propose_changes,
    read_request_changes,
)
from handlers.blocks.request import build_request_card
from handlers.blocks.work import build_work_card

__all__ = [
    "Impact",
    "Message",
    "build_add_milestone_modal",
    "build_announcement",
    "build_contract_card",
    "build_decline_modal",
    "build_edit_milestone_modal",
    "build_error",
    "build_help",
    "build_history",
    "build_home",
    "build_new_contract_modal",
    "build_notice",
    "build_notice_modal",
    "build_propose_changes_modal",
    "build_request_card",
    "build_request_changes_modal",
    "build_status",
    "build_work_card",
    "new_contract_errors",
    "read_add_milestone",
    "read_decline",
    "read_edit_milestone",
    "read_new_contract",
    "read_propose_changes",
    "read_request_changes",
    "request_impact",
]
