from __future__ import annotations

from typing import Any

import pytest

from domain.model import ContractStatus, MilestoneStatus
from handlers.blocks import build_announcement

from .support import (
    CLIENT,
    FREELANCER,
    MANAGER,
    all_text,
    check_message,
    contract,
    event,
    milestone,
)

BEFORE = {"title": "Build", "description": "", "amount_minor": 250_000, "due_date": "2026-12-01"}


def _line(kind: str, *, agency: bool = False, **kwargs: Any) -> str:
    c = contract(
        status=ContractStatus.ACTIVE,
        agency=agency,
        milestones=[milestone(1, title="Design"), milestone(2, title="Build")],
    )
    message = build_announcement(c, event(kind, **kwargs))
    assert message is not None
    blocks = check_message(message)
    assert len(blocks) <= 2
    return str(blocks[0]["text"]["text"])


def test_announcement_matches_the_expected_blocks() -> None:
    c = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1, title="Design")])
    message = build_announcement(
        c, event("milestone_funded", milestone_number=1, amount_minor=150_000)
    )
    assert message is not None
    assert message.as_kwargs() == {
        "text": ":moneybag: <@UFREELA01> milestone *1 · Design* is funded — you can start. "
        "($1,500.00 in escrow) Recorded as funded — move the money yourselves.",
        "blocks": [
            {
                "type": "section",
                "block_id": "announce",
                "text": {
                    "type": "mrkdwn",
                    "text": ":moneybag: <@UFREELA01> milestone *1 · Design* is funded — you can "
                    "start. ($1,500.00 in escrow) Recorded as funded — move the money "
                    "yourselves.",
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Contract 7  ·  <!date^1793613600^{date_short_pretty} at {time}"
                        "|Mon 2 Nov 2026 10:00 UTC>",
                    }
                ],
            },
        ],
    }


@pytest.mark.parametrize(
    ("kind", "kwargs", "expected"),
    [
        (
            "contract_created",
            {"title": "Site <!channel>", "currency": "USD"},
            "<@UCLIENT01> created contract 7 *Site &lt;!channel&gt;* in USD.",
        ),
        (
            "milestone_added",
            {
                "milestone_number": 2,
                "after": {**BEFORE, "title": "Build & ship"},
                "message": "as <!here> agreed",
            },
            "<@UCLIENT01> added milestone 2 *Build &amp; ship* — $2,500.00, due Tue 1 Dec 2026."
            "\n>as &lt;!here&gt; agreed",
        ),
        (
            "milestone_edited",
            {
                "milestone_number": 2,
                "before": {"amount_minor": 250_000, "due_date": "2026-12-01"},
                "after": {"amount_minor": 260_000, "due_date": "2026-12-11"},
                "message": "",
            },
            "<@UCLIENT01> edited milestone 2 *Build*: Amount: ~$2,500.00~ → *$2,600.00*; "
            "Due: ~Tue 1 Dec 2026~ → *Fri 11 Dec 2026*.",
        ),
        (
            "milestone_deleted",
            {"milestone_number": 2, "before": BEFORE, "message": "not needed"},
            "<@UCLIENT01> deleted milestone 2 ~Build · $2,500.00~.\n>not needed",
        ),
        (
            "terms_agreed",
            {"actor": FREELANCER, "side": "provider", "total_minor": 400_000},
            "<@UFREELA01> agreed to the terms for the provider side (total $4,000.00).",
        ),
        (
            "contract_activated",
            {"actor": "system", "total_minor": 400_000},
            "Contract 7 is active: both sides agreed. Contract total $4,000.00. "
            "Next: <@UCLIENT01> funds the first milestone.",
        ),
        (
            "escrow_topped_up",
            {"milestone_number": 1, "request_number": 3, "amount_minor": 30_000},
            "Escrow topped up by $300.00 for milestone 1 (change request #3).",
        ),
        (
            "request_accepted",
            {"request_number": 3, "top_up": 30_000},
            "<@UCLIENT01> accepted change request #3. The changes are applied. "
            "Escrow topped up by $300.00.",
        ),
        (
            "request_declined",
            {"request_number": 3, "reason": "Budget <fixed>"},
            "<@UCLIENT01> declined change request #3.\n>Budget &lt;fixed&gt;",
        ),
        (
            "request_withdrawn",
            {"actor": FREELANCER, "request_number": 3},
            "<@UFREELA01> withdrew change request #3.",
        ),
        (
            "request_cancelled",
            {"actor": "system", "request_number": 3, "reason": "the contract ended"},
            "Change request #3 was cancelled: the contract ended",
        ),
        (
            "changes_requested",
            {"milestone_number": 1, "note": "Bigger <logo>"},
            "<@UCLIENT01> asked <@UFREELA01> for changes to milestone *1 · Design*. "
            "The review clock stopped.\n>Bigger &lt;logo&gt;",
        ),
        (
            "milestone_released",
            {"milestone_number": 1, "amount_minor": 150_000, "automatic": False},
            "<@UFREELA01> milestone *1 · Design* is paid: <@UCLIENT01> approved, "
            "$1,500.00 released. Recorded as paid — the client pays the provider directly.",
        ),
        (
            "milestone_released",
            {"actor": "system", "milestone_number": 1, "amount_minor": 150_000, "automatic": True},
            "<@UFREELA01> milestone *1 · Design* is paid: $1,500.00 released automatically "
            "(the review period ended with no answer). "
            "Recorded as paid — the client pays the provider directly.",
        ),
        (
            "contract_ended",
            {"refunded_minor": 150_000},
            "<@UCLIENT01> ended contract 7. $1,500.00 refunded to <@UCLIENT01>.",
        ),
    ],
)
def test_each_event_kind_gets_one_short_line(
    kind: str, kwargs: dict[str, Any], expected: str
) -> None:
    assert _line(kind, **kwargs).split(" ", 1)[1] == expected


def test_funding_in_an_agency_mentions_everyone_who_can_start() -> None:
    line = _line("milestone_funded", agency=True, milestone_number=1, amount_minor=1)
    assert line.startswith(":moneybag: <@UMANAGE01>, <@UMANAGE02> and <@UMEMBER01> milestone")
    assert "you can start" in line
    assert MANAGER in line


@pytest.mark.parametrize("kind", ["request_proposed", "work_submitted", "agreement_cleared", "x"])
def test_kinds_with_their_own_card_are_not_announced(kind: str) -> None:
    c = contract(milestones=[milestone(1)])
    assert build_announcement(c, event(kind, request_number=1)) is None


def test_milestone_changes_applied_by_a_request_are_not_announced_again() -> None:
    c = contract(milestones=[milestone(1)])
    for kind in ("milestone_added", "milestone_edited", "milestone_deleted"):
        assert build_announcement(c, event(kind, milestone_number=1, request_number=2)) is None


def test_long_messages_are_cut_and_escaped() -> None:
    c = contract(milestones=[milestone(1, status=MilestoneStatus.PENDING)])
    message = build_announcement(
        c,
        event("milestone_deleted", milestone_number=1, before=BEFORE, message="<!channel>" * 300),
    )
    assert message is not None
    text = all_text(check_message(message))
    assert "<!channel>" not in text and "…" in text
    assert CLIENT in text
