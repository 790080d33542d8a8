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
    END_CONTRACT = "end_contract"  # the confirmation a typed `end` answers with
    ACCEPT_REFUND = "accept_refund"  # the provider side, on the ending notice
    DISPUTE = "dispute"  # opens the form for the reason (work card, ending notice)
    AGREE_TO_SPLIT = "agree_to_split"  # the other side, on the dispute card
    COUNTER = "counter_request"  # Suggest changes: opens the form prefilled with the request
    REVISE = "revise_request"  # Revise: the proposer's own request, prefilled
    GIVE_MORE_TIME = "give_more_time"
    KEEP_REVIEW_DATE = "keep_review_date"
    CHOOSE_CONTRACT = "choose_contract"  # runs a typed command on the contract chosen
    HOME_PREVIOUS = "home_page_previous"
    HOME_NEXT = "home_page_next"
    # URL buttons (Slack opens the link and still sends the click, which is only acked).
    PAY_LINK = "pay_link"  # Pay with Stripe: the pay link, to the person who funded
    PAYOUTS_LINK = "payouts_link"  # Set up payouts: the onboarding link (`/milestone payouts`)


class View(StrEnum):
    NEW_CONTRACT = "new_contract"
    ADD_MILESTONE = "add_milestone"
    EDIT_MILESTONE = "edit_milestone"
    PROPOSE = "propose_changes"
    COUNTER = "counter_request"
    REVISE = "revise_request"
    DECLINE = "decline_request"
    REQUEST_CHANGES = "request_changes"
    DISPUTE = "dispute"
