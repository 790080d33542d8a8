from __future__ import annotations

import json
from datetime import timedelta

from domain.ledger import Escrow
from domain.model import ChangeKind, ContractStatus, MilestoneStatus
from handlers.blocks import build_contract_card, build_status
from handlers.ids import Action

from .support import (
    CLIENT,
    DUE,
    FREELANCER,
    MANAGER,
    NOW,
    all_text,
    buttons,
    change,
    check_message,
    contract,
    labels,
    later,
    milestone,
    request,
    snap,
)

FOOTER = (
    "Updated <!date^1793613600^{date_short_pretty} at {time}|Mon 2 Nov 2026 10:00 UTC>  ·  "
    "`/milestone history` shows every change  ·  `/milestone help`"
)


def test_negotiating_card_matches_the_expected_blocks() -> None:
    c = contract(milestones=[milestone(1, title="Design", description="Wireframes & mockups")])

    message = build_contract_card(snap(c), now=NOW)

    assert message.as_kwargs() == {
        "text": (
            "Contract 7 · Website redesign (negotiating). "
            "Next: <@UCLIENT01> and <@UFREELA01> agree to the terms."
        ),
        "blocks": [
            {
                "type": "section",
                "block_id": "card_head",
                "text": {
                    "type": "mrkdwn",
                    "text": ":page_facing_up: *Website redesign*\n"
                    "Contract 7  ·  :memo: Negotiating  ·  USD",
                },
            },
            {
                "type": "context",
                "block_id": "card_parties",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": ":bust_in_silhouette: Client <@UCLIENT01>   "
                        ":hammer_and_wrench: Freelancer <@UFREELA01>",
                    }
                ],
            },
            {"type": "divider"},
            {
                "type": "section",
                "block_id": "card_milestones_0",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Milestones* · 1 milestone\n"
                    ":white_circle: *1 · Design* · $1,500.00 · due Tue 1 Dec 2026 · "
                    "not funded yet\n>Wireframes &amp; mockups",
                },
            },
            {"type": "divider"},
            {
                "type": "context",
                "block_id": "card_escrow",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": ":moneybag: Contract total *$1,500.00* over 1 milestone  ·  "
                        "escrow is funded one milestone at a time once both sides agree  ·  "
                        "The bot keeps the record only: it holds no money. Move the money "
                        "yourselves (bank transfer, invoice, your own escrow) when the record "
                        "says so.",
                    }
                ],
            },
            {
                "type": "section",
                "block_id": "card_agreement",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Agreement:* Client <@UCLIENT01> :hourglass_flowing_sand: not yet"
                    "  ·  Freelancer <@UFREELA01> :hourglass_flowing_sand: not yet",
                },
            },
            {
                "type": "section",
                "block_id": "card_next",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Next:* <@UCLIENT01> and <@UFREELA01> agree to the terms.",
                },
            },
            {
                "type": "actions",
                "block_id": "card_actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "agree",
                        "text": {"type": "plain_text", "text": "Agree to terms", "emoji": True},
                        "value": '{"c":7}',
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": "add_milestone",
                        "text": {"type": "plain_text", "text": "Add milestone", "emoji": True},
                        "value": '{"c":7}',
                    },
                ],
            },
            {
                "type": "context",
                "block_id": "card_footer",
                "elements": [{"type": "mrkdwn", "text": FOOTER}],
            },
        ],
    }
    check_message(message)


def test_card_without_milestones_offers_add_milestone_as_the_main_button() -> None:
    blocks = check_message(build_contract_card(snap(contract()), now=NOW))
    assert labels(blocks) == ["Add milestone"]
    assert buttons(blocks)[0]["style"] == "primary"
    assert "No milestones yet" in all_text(blocks)
    assert "Either side adds the first milestone." in all_text(blocks)


def test_agree_button_stays_while_one_side_still_owes_agreement() -> None:
    c = contract(milestones=[milestone(1)], client_agreed_at=NOW)
    blocks = check_message(build_contract_card(snap(c), now=NOW))
    assert labels(blocks) == ["Agree to terms", "Add milestone"]
    text = all_text(blocks)
    assert "Client <@UCLIENT01> :white_check_mark: agreed <!date^1793613600^" in text
    assert "*Next:* <@UFREELA01> agrees to the terms." in text


def test_agency_card_names_the_agency_its_managers_and_members() -> None:
    c = contract(milestones=[milestone(1)], agency=True, provider_agreed_by=MANAGER)
    blocks = check_message(build_contract_card(snap(c), now=NOW))
    text = all_text(blocks)
    assert (
        ":office: Agency *Pixel &amp; Co* — managers <@UMANAGE01> and <@UMANAGE02>; "
        "member <@UMEMBER01>"
    ) in text
    assert "Agency *Pixel &amp; Co* :white_check_mark: agreed (<@UMANAGE01>)" in text
    assert "*Next:* <@UCLIENT01> agrees to the terms." in text


def test_fund_button_names_milestone_and_amount_and_confirms_it() -> None:
    c = contract(
        status=ContractStatus.ACTIVE,
        milestones=[
            milestone(1, status=MilestoneStatus.RELEASED, released_at=later(days=3)),
            milestone(2, amount_minor=250_000),
        ],
    )
    blocks = check_message(
        build_contract_card(
            snap(c, escrow=Escrow(funded_minor=150_000, released_minor=150_000)), now=NOW
        )
    )
    fund = buttons(blocks)[0]
    assert fund["text"]["text"] == "Fund milestone 2 ($2,500.00)"
    assert fund["action_id"] == Action.FUND
    assert json.loads(fund["value"]) == {"c": 7, "m": 102}
    assert fund["style"] == "primary"
    assert fund["confirm"]["title"]["text"] == "Fund milestone 2?"
    assert "records $2,500.00 as funded" in fund["confirm"]["text"]["text"]
    assert fund["confirm"]["confirm"]["text"] == "Fund $2,500.00"
    assert labels(blocks) == ["Fund milestone 2 ($2,500.00)", "Propose changes"]
    text = all_text(blocks)
    assert "*paid* <!date^1793872800^" in text
    assert "*Next:* <@UCLIENT01> funds milestone 2 ($2,500.00)." in text
    escrow = next(b for b in blocks if b.get("block_id") == "card_escrow")
    assert [f["text"] for f in escrow["fields"]] == [
        "*Contract total*\n$4,000.00",
        "*In escrow*\n$0.00",
        "*Funded*\n$1,500.00",
        "*Released*\n$1,500.00",
    ]


def test_review_offers_approve_and_request_changes_with_the_release_time() -> None:
    due_at = later(days=14)
    c = contract(
        status=ContractStatus.ACTIVE,
        milestones=[
            milestone(
                1, status=MilestoneStatus.SUBMITTED, submitted_at=NOW, auto_release_at=due_at
            ),
            milestone(2),
        ],
    )
    blocks = check_message(
        build_contract_card(snap(c, escrow=Escrow(funded_minor=150_000)), now=NOW)
    )
    assert labels(blocks) == ["Approve & release", "Request changes", "Dispute", "Propose changes"]
    approve, changes, dispute, _ = buttons(blocks)
    assert dispute["action_id"] == Action.DISPUTE and dispute["value"] == approve["value"]
    assert approve["action_id"] == Action.APPROVE and changes["action_id"] == Action.REQUEST_CHANGES
    assert json.loads(approve["value"]) == {"c": 7, "m": 101} == json.loads(changes["value"])
    assert "$1,500.00" in approve["confirm"]["text"]["text"]
    assert approve["confirm"]["confirm"]["text"] == "Release $1,500.00"
    assert "confirm" not in changes
    token = f"<!date^{int(due_at.timestamp())}^"
    text = all_text(blocks)
    assert f"*submitted* — automatic release {token}" in text
    assert f"or requests changes — automatic release {token}" in text


def test_work_in_progress_shows_no_next_button_but_propose_changes() -> None:
    c = contract(
        status=ContractStatus.ACTIVE,
        milestones=[milestone(1, status=MilestoneStatus.FUNDED, due_date=NOW.date())],
    )
    blocks = check_message(
        build_contract_card(snap(c, escrow=Escrow(funded_minor=150_000)), now=NOW)
    )
    assert labels(blocks) == ["Propose changes"]
    assert "*Next:* <@UFREELA01> delivers milestone 1." in all_text(blocks)
    overdue = check_message(
        build_contract_card(
            snap(c, escrow=Escrow(funded_minor=150_000)), now=NOW + timedelta(days=1)
        )
    )
    assert "past due" in all_text(overdue)


def test_closed_card_is_a_read_only_summary() -> None:
    c = contract(
        status=ContractStatus.CLOSED,
        closed_at=later(days=2),
        closed_by=CLIENT,
        milestones=[
            milestone(1, status=MilestoneStatus.RELEASED, released_at=later(days=1)),
            milestone(2, refunded_at=later(days=2)),
            milestone(3),
        ],
    )
    escrow = Escrow(funded_minor=300_000, released_minor=150_000, refunded_minor=150_000)
    blocks = check_message(build_contract_card(snap(c, escrow=escrow), now=NOW))
    assert buttons(blocks) == []
    text = all_text(blocks)
    assert ":lock: Closed" in text
    assert "*refunded* <!date^" in text
    assert "*Refunded*\n$1,500.00" in text
    assert "Closed <!date^1793786400^{date_short_pretty} at {time}|" in text
    assert "by <@UCLIENT01>. This contract is read-only." in text


def test_user_typed_text_is_escaped_everywhere_on_the_card() -> None:
    evil = "<!channel> & <@U1> <https://x.y|click>"
    c = contract(
        title=evil,
        agency=True,
        agency_name=evil,
        milestones=[milestone(1, title=evil, description=evil)],
    )
    message = build_contract_card(snap(c), now=NOW)
    blocks = check_message(message)
    text = all_text(blocks) + message.text
    assert "<!channel>" not in text
    assert "<@U1>" not in text
    assert "<https://" not in text
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in text


def test_deleted_milestones_are_struck_or_summarised() -> None:
    few = contract(milestones=[milestone(1, status=MilestoneStatus.DELETED), milestone(2)])
    text = all_text(check_message(build_contract_card(snap(few), now=NOW)))
    assert ":wastebasket: ~1 · Milestone 1 · $1,500.00~ deleted" in text
    many = contract(
        milestones=[milestone(n, status=MilestoneStatus.DELETED) for n in range(1, 6)]
        + [milestone(6)]
    )
    text = all_text(check_message(build_contract_card(snap(many), now=NOW)))
    assert ":wastebasket: _Deleted: 1, 2, 3, 4, 5_" in text
    assert "~1 ·" not in text


def test_pending_requests_are_listed_one_line_each_and_summarised() -> None:
    requests = [
        request(
            n,
            changes=[
                change(ChangeKind.EDIT, 1, {"amount_minor": 200_000}, {"amount_minor": 150_000}),
                change(ChangeKind.ADD, None, {"title": "Extra <b>", "amount_minor": 1}),
            ],
            proposed_by=FREELANCER,
        )
        for n in range(1, 9)
    ]
    c = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1)])
    blocks = check_message(build_contract_card(snap(c, pending=requests), now=NOW))
    section = next(b for b in blocks if b.get("block_id") == "card_requests")
    text = section["text"]["text"]
    assert text.startswith("*Pending change requests* · 8\n")
    assert "• *#1* from <@UFREELA01>: edit 1 (amount), add “Extra &lt;b&gt;”" in text
    assert text.endswith("…and 3 more")
    assert "*Next:* <@UCLIENT01> accepts or declines change request #1." in all_text(blocks)


def test_fifty_milestones_with_long_descriptions_stay_within_slack_limits() -> None:
    long = "&<" * 1000  # 2,000 characters that grow when escaped
    statuses = [MilestoneStatus.RELEASED] * 10 + [MilestoneStatus.DELETED] * 5
    milestones = [
        milestone(
            n,
            title=("T&" * 100),
            description=long,
            status=statuses[n - 1] if n <= len(statuses) else MilestoneStatus.PENDING,
            released_at=NOW,
            due_date=DUE,
        )
        for n in range(1, 51)
    ]
    milestones[15] = milestone(16, status=MilestoneStatus.SUBMITTED, auto_release_at=NOW)
    requests = [
        request(
            n,
            changes=[change(ChangeKind.ADD, None, {"title": long[:200]}) for _ in range(50)],
        )
        for n in range(1, 40)
    ]
    c = contract(status=ContractStatus.ACTIVE, milestones=milestones, agency=True)
    for message in (
        build_contract_card(snap(c, pending=requests), now=NOW),
        build_status(snap(c, pending=requests), now=NOW, viewer=CLIENT),
    ):
        blocks = check_message(message)
        assert len(blocks) < 30
        assert "…" in all_text(blocks)


def test_status_tells_the_viewer_it_is_their_turn() -> None:
    c = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1)])
    mine = check_message(build_status(snap(c), now=NOW, viewer=CLIENT))
    assert "*Your turn* — Fund milestone 1 ($1,500.00)." in all_text(mine)
    theirs = check_message(build_status(snap(c), now=NOW, viewer=FREELANCER))
    assert "*Next:* <@UCLIENT01> funds milestone 1 ($1,500.00)." in all_text(theirs)
