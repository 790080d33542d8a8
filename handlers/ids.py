"""Action and callback ids: the names that tie blocks to listeners."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    AGREE = "agree"
    FUND = "fund"
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    ACCEPT = "accept_request"
    DECLINE = "decline_request"
    WITHDRAW = "withdraw_request"
    PROPOSE = "propose_changes"
    ADD_MILESTONE = "add_milestone"
    SHOW_STATUS = "show_status"


class View(StrEnum):
    NEW_CONTRACT = "new_contract"
    ADD_MILESTONE = "add_milestone"
    EDIT_MILESTONE = "edit_milestone"
    PROPOSE = "propose_changes"
    DECLINE = "decline_request"
    REQUEST_CHANGES = "request_changes"
