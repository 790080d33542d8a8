from __future__ import annotations

import json
from typing import Any

from domain.model import Contract, ContractStatus, Milestone, MilestoneStatus
from handlers.blocks import build_work_card
from handlers.ids import Action

from .support import (
    CLIENT,
    FREELANCER,
    NOW,
    all_text,
    buttons,
    check_message,
    contract,
    labels,
    later,
    milestone,
)

RELEASE_AT = later(days=14)


def _submitted(**extra: Any) -> tuple[Contract, Milestone]:
    m = milestone(
        2,
        title="Build <shop>",
        amount_minor=250_000,
        status=MilestoneStatus.SUBMITTED,
        submitted_at=NOW,
        submitted_by=FREELANCER,
        submission_note="Figma link in the thread & <!channel>",
        submission_count=1,
        auto_release_at=RELEASE_AT,
        **extra,
    )
    return contract(status=ContractStatus.ACTIVE, milestones=[milestone(1), m]), m


def test_submitted_work_card_matches_the_expected_blocks() -> None:
    c, m = _submitted()
    message = build_work_card(c, m)
    blocks = check_message(message)
    assert message.text == (
        "Work submitted for milestone 2 ($2,500.00) on contract 7 (Website redesign): "
        "<@UCLIENT01>, approve or request changes."
    )
    assert blocks[:4] == [
        {
            "type": "section",
            "block_id": "work_head",
            "text": {
                "type": "mrkdwn",
                "text": ":package: *Work submitted* — milestone *2 · Build &lt;shop&gt;*\n"
                "$2,500.00  ·  Contract 7 · *Website redesign*",
            },
        },
        {
            "type": "context",
            "block_id": "work_submitted",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Submitted by <@UFREELA01> <!date^1793613600^{date_short_pretty} "
                    "at {time}|Mon 2 Nov 2026 10:00 UTC>",
                }
            ],
        },
        {
            "type": "section",
            "block_id": "work_note",
            "text": {"type": "mrkdwn", "text": ">Figma link in the thread &amp; &lt;!channel&gt;"},
        },
        {
            "type": "section",
            "block_id": "work_deadline",
            "text": {
                "type": "mrkdwn",
                "text": ":hourglass_flowing_sand: Automatic release <!date^1794823200^"
                "{date_short_pretty} at {time}|Mon 16 Nov 2026 10:00 UTC> if there's no answer.",
            },
        },
    ]
    approve, changes, dispute = buttons(blocks)
    assert labels(blocks) == ["Approve & release", "Request changes", "Dispute"]
    assert dispute["action_id"] == Action.DISPUTE and "confirm" not in dispute
    assert approve["action_id"] == Action.APPROVE and approve["style"] == "primary"
    assert changes["action_id"] == Action.REQUEST_CHANGES and "confirm" not in changes
    assert json.loads(approve["value"]) == {"c": 7, "m": 102}
    assert approve["confirm"] == {
        "title": {"type": "plain_text", "text": "Approve milestone 2?", "emoji": True},
        "text": {
            "type": "plain_text",
            "text": "This records $2,500.00 as released to the freelancer: pay them yourselves. "
            "It can't be undone.",
            "emoji": True,
        },
        "confirm": {"type": "plain_text", "text": "Release $2,500.00", "emoji": True},
        "deny": {"type": "plain_text", "text": "Cancel", "emoji": True},
    }


def test_approved_work_shows_who_paid_and_when_without_buttons() -> None:
    c, m = _submitted()
    m.status = MilestoneStatus.RELEASED
    m.released_at = later(days=1)
    m.released_by = CLIENT
    blocks = check_message(build_work_card(c, m))
    assert buttons(blocks) == []
    text = all_text(blocks)
    assert ":white_check_mark: *Approved and paid* by <@UCLIENT01> <!date^1793700000^" in text
    assert "$2,500.00 released." in text
    assert "Automatic release" not in text


def test_automatic_release_says_so() -> None:
    c, m = _submitted()
    m.status = MilestoneStatus.RELEASED
    m.released_at = RELEASE_AT
    m.released_by = "system"
    m.released_automatically = True
    message = build_work_card(c, m)
    blocks = check_message(message)
    assert buttons(blocks) == []
    assert "*Paid automatically* <!date^1794823200^" in all_text(blocks)
    assert "is paid" in message.text


def test_changes_requested_shows_the_note_and_no_buttons() -> None:
    c, m = _submitted()
    m.status = MilestoneStatus.FUNDED
    m.auto_release_at = None
    m.changes_requested_at = later(days=2)
    m.changes_requested_note = "Bigger logo <please>"
    blocks = check_message(build_work_card(c, m))
    assert buttons(blocks) == []
    text = all_text(blocks)
    assert ":leftwards_arrow_with_hook: *Changes requested* by <@UCLIENT01> <!date^" in text
    assert ">Bigger logo &lt;please&gt;" in text


def test_a_second_submission_says_which_round_it_is() -> None:
    c, m = _submitted(changes_requested_at=NOW)
    m.submission_count = 2
    text = all_text(check_message(build_work_card(c, m)))
    assert "·  submission 2" in text


def test_contract_ended_before_a_decision() -> None:
    c, m = _submitted()
    m.status = MilestoneStatus.PENDING
    m.refunded_at = later(days=1)
    blocks = check_message(build_work_card(c, m))
    assert buttons(blocks) == []
    assert "escrow was refunded to the client" in all_text(blocks)


def test_long_note_stays_within_limits() -> None:
    c, m = _submitted()
    m.submission_note = "&" * 2000
    m.title = "<" * 200
    check_message(build_work_card(c, m))
