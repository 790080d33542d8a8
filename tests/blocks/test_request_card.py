from __future__ import annotations

import json

from domain.model import ChangeKind, Contract, ContractStatus, MilestoneStatus, RequestStatus
from handlers.blocks import build_request_card, request_impact
from handlers.blocks.describe import event_text
from handlers.ids import Action

from .support import (
    CLIENT,
    NOW,
    all_text,
    buttons,
    change,
    check_message,
    contract,
    event,
    labels,
    later,
    milestone,
    request,
)

BEFORE_1 = {
    "title": "Design",
    "description": "",
    "amount_minor": 150_000,
    "due_date": "2026-12-01",
}


def _active() -> Contract:
    return contract(
        status=ContractStatus.ACTIVE,
        milestones=[
            milestone(1, title="Design", status=MilestoneStatus.FUNDED),
            milestone(2, title="Build", amount_minor=250_000),
            milestone(3, title="Launch", amount_minor=50_000),
        ],
    )


def test_small_request_card_matches_the_expected_blocks() -> None:
    c = _active()
    r = request(
        changes=[
            change(
                ChangeKind.EDIT,
                2,
                {"title": "Build", "amount_minor": 200_000},
                {**BEFORE_1, "title": "Build", "amount_minor": 250_000},
            )
        ]
    )
    message = build_request_card(c, r)
    assert message.as_kwargs() == {
        "text": (
            "Change request #1 on contract 7 (Website redesign) from <@UFREELA01>: "
            "1 change, waiting for <@UCLIENT01>."
        ),
        "blocks": [
            {
                "type": "section",
                "block_id": "request_head",
                "text": {
                    "type": "mrkdwn",
                    "text": ":memo: *Change request #1*  ·  :hourglass_flowing_sand: Pending\n"
                    "Contract 7 · *Website redesign*  ·  proposed by <@UFREELA01> "
                    "<!date^1793613600^{date_short_pretty} at {time}|Mon 2 Nov 2026 10:00 UTC>",
                },
            },
            {
                "type": "section",
                "block_id": "request_changes_0",
                "text": {
                    "type": "mrkdwn",
                    "text": ":pencil2: *Edit milestone 2* · Build\n"
                    "Amount: ~$2,500.00~ → *$2,000.00*",
                },
            },
            {
                "type": "section",
                "block_id": "request_impact",
                "text": {
                    "type": "mrkdwn",
                    "text": "*If accepted*\nContract total: $4,500.00 → *$4,000.00* (−$500.00)",
                },
            },
            {
                "type": "actions",
                "block_id": "request_actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "accept_request",
                        "text": {"type": "plain_text", "text": "Accept", "emoji": True},
                        "value": '{"c":7,"r":51}',
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": "decline_request",
                        "text": {"type": "plain_text", "text": "Decline", "emoji": True},
                        "value": '{"c":7,"r":51}',
                    },
                    {
                        "type": "button",
                        "action_id": "counter_request",
                        "text": {"type": "plain_text", "text": "Suggest changes", "emoji": True},
                        "value": '{"c":7,"r":51}',
                    },
                    {
                        "type": "button",
                        "action_id": "withdraw_request",
                        "text": {"type": "plain_text", "text": "Withdraw", "emoji": True},
                        "value": '{"c":7,"r":51}',
                    },
                    {
                        "type": "button",
                        "action_id": "revise_request",
                        "text": {"type": "plain_text", "text": "Revise", "emoji": True},
                        "value": '{"c":7,"r":51}',
                    },
                ],
            },
            {
                "type": "context",
                "block_id": "request_who",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "<@UCLIENT01> accepts, declines or suggests changes  ·  "
                        "<@UFREELA01> can withdraw or revise",
                    }
                ],
            },
        ],
    }
    check_message(message)


def test_each_kind_of_change_shows_before_and_after() -> None:
    c = _active()
    r = request(
        message="Client asked for <!here> & more",
        changes=[
            change(
                ChangeKind.EDIT,
                1,
                {"amount_minor": 180_000, "due_date": "2026-12-11", "title": "Design"},
                BEFORE_1,
            ),
            change(
                ChangeKind.DELETE, 3, {}, {**BEFORE_1, "title": "Launch", "amount_minor": 50_000}
            ),
            change(
                ChangeKind.ADD,
                None,
                {
                    "title": "Extra <page>",
                    "amount_minor": 70_000,
                    "due_date": "2027-01-15",
                    "description": "About & contact",
                },
            ),
        ],
    )
    blocks = check_message(build_request_card(c, r))
    text = all_text(blocks)
    assert ">Client asked for &lt;!here&gt; &amp; more" in text
    assert ":pencil2: *Edit milestone 1* · Design\nAmount: ~$1,500.00~ → *$1,800.00*\n" in text
    assert "Due: ~Tue 1 Dec 2026~ → *Fri 11 Dec 2026*" in text
    assert "Title:" not in text  # unchanged fields are not shown
    assert ":wastebasket: *Delete milestone 3* · ~Launch~\n~$500.00 · due Tue 1 Dec 2026~" in text
    assert (
        ":heavy_plus_sign: *Add milestone* · *Extra &lt;page&gt;*\n$700.00 · due Fri 15 Jan 2027"
        in text
    )
    assert ">About &amp; contact" in text
    impact = next(b for b in blocks if b.get("block_id") == "request_impact")["text"]["text"]
    assert "Contract total: $4,500.00 → *$5,000.00* (+$500.00)" in impact
    assert "Escrow top-up at once: *$300.00* (milestone 1 is already funded)" in impact
    assert "Milestone 1 due: ~Tue 1 Dec 2026~ → *Fri 11 Dec 2026*" in impact


def test_accept_confirms_the_top_up_amount_only_when_escrow_grows() -> None:
    c = _active()
    raise_funded = request(
        changes=[change(ChangeKind.EDIT, 1, {"amount_minor": 200_000}, BEFORE_1)]
    )
    blocks = check_message(build_request_card(c, raise_funded))
    accept = buttons(blocks)[0]
    assert accept["text"]["text"].startswith("Accept")
    assert accept["confirm"]["text"]["text"].count("$500.00") == 1
    assert "$500.00" in accept["confirm"]["confirm"]["text"]
    raise_future = request(
        changes=[
            change(
                ChangeKind.EDIT, 2, {"amount_minor": 300_000}, {**BEFORE_1, "amount_minor": 250_000}
            )
        ]
    )
    blocks = check_message(build_request_card(c, raise_future))
    assert "confirm" not in buttons(blocks)[0]
    assert [b["action_id"] for b in buttons(blocks)] == [
        Action.ACCEPT,
        Action.DECLINE,
        Action.COUNTER,
        Action.WITHDRAW,
        Action.REVISE,
    ]
    assert all("confirm" not in b for b in buttons(blocks))
    assert json.loads(buttons(blocks)[0]["value"]) == {"c": 7, "r": 51}


def test_caller_can_pass_the_totals() -> None:
    c = _active()
    r = request(changes=[change(ChangeKind.EDIT, 1, {"amount_minor": 200_000}, BEFORE_1)])
    impact = request_impact(c, r)
    assert (impact.total_before, impact.total_after, impact.top_up) == (450_000, 500_000, 50_000)
    blocks = check_message(build_request_card(c, r, total_before=1_000_000, top_up_now=0))
    assert "Contract total: $10,000.00 → *$10,500.00*" in all_text(blocks)
    assert "confirm" not in buttons(blocks)[0]


def test_decided_requests_show_the_outcome_and_no_buttons() -> None:
    c = _active()
    edit = [
        change(ChangeKind.EDIT, 2, {"amount_minor": 200_000}, {**BEFORE_1, "amount_minor": 250_000})
    ]
    cases = {
        RequestStatus.ACCEPTED: ":white_check_mark: *Accepted* by <@UCLIENT01> <!date^",
        RequestStatus.DECLINED: ":x: *Declined* by <@UCLIENT01> <!date^",
        RequestStatus.WITHDRAWN: ":leftwards_arrow_with_hook: *Withdrawn* by <@UFREELA01> <!date^",
        RequestStatus.CANCELLED: ":no_entry_sign: *Cancelled* <!date^",
    }
    for status, outcome in cases.items():
        decider = "UFREELA01" if status == RequestStatus.WITHDRAWN else CLIENT
        r = request(
            changes=edit,
            status=status,
            decided_at=later(hours=2),
            decided_by=None if status == RequestStatus.CANCELLED else decider,
            decline_reason="Budget is fixed <!channel>",
            cancel_reason="milestone 2 was funded",
        )
        message = build_request_card(c, r)
        blocks = check_message(message)
        assert buttons(blocks) == [], status
        assert outcome in all_text(blocks), status
        assert "If accepted" not in all_text(blocks)
        assert f"was {status.value}" in message.text
    declined = request(
        changes=edit,
        status=RequestStatus.DECLINED,
        decided_by=CLIENT,
        decided_at=NOW,
        decline_reason="Budget is fixed <!channel>",
    )
    text = all_text(check_message(build_request_card(c, declined)))
    assert ">Budget is fixed &lt;!channel&gt;" in text
    cancelled = request(
        changes=edit,
        status=RequestStatus.CANCELLED,
        decided_at=NOW,
        cancel_reason="the contract ended",
    )
    text = all_text(check_message(build_request_card(c, cancelled)))
    assert "*Cancelled* <!date^1793613600^{date_short_pretty} at {time}|" in text
    assert ": the contract ended Nothing changed." in text


def test_agency_request_can_be_withdrawn_by_any_manager() -> None:
    c = contract(status=ContractStatus.ACTIVE, agency=True, milestones=[milestone(1)])
    r = request(
        proposed_by="UMANAGE01",
        changes=[
            change(
                ChangeKind.ADD, None, {"title": "X", "amount_minor": 1, "due_date": "2027-01-01"}
            )
        ],
    )
    blocks = check_message(build_request_card(c, r))
    assert labels(blocks) == ["Accept", "Decline", "Suggest changes", "Withdraw", "Revise"]
    assert "an agency manager (<@UMANAGE01> or <@UMANAGE02>) can withdraw" in all_text(blocks)


def test_fifty_long_changes_stay_within_limits() -> None:
    long = "&" * 2000
    c = contract(
        status=ContractStatus.ACTIVE,
        milestones=[milestone(n, title="<" * 200, description=long) for n in range(1, 51)],
    )
    changes = [
        change(
            ChangeKind.EDIT,
            n,
            {
                "title": ">" * 200,
                "description": "x" + long,
                "amount_minor": 10**9,
                "due_date": "2027-01-01",
            },
            {
                "title": "<" * 200,
                "description": long,
                "amount_minor": 150_000,
                "due_date": "2026-12-01",
            },
            position=n,
        )
        for n in range(1, 51)
    ]
    changes.append(
        change(
            ChangeKind.ADD,
            None,
            {"title": "&" * 200, "description": long, "amount_minor": 5, "due_date": "2027-01-01"},
        )
    )
    r = request(changes=changes, message=long)
    blocks = check_message(build_request_card(c, r))
    assert len(blocks) <= 30
    text = all_text(blocks)
    assert "more change" in text
    assert "…and 40 more due dates move" in text


def test_an_accepted_add_names_the_number_it_got() -> None:
    c = _active()
    r = request(
        status=RequestStatus.ACCEPTED,
        decided_by=CLIENT,
        decided_at=NOW,
        changes=[
            change(
                ChangeKind.ADD, 4, {"title": "New", "amount_minor": 100, "due_date": "2027-01-01"}
            )
        ],
    )
    assert "*Add milestone 4* · *New*" in all_text(check_message(build_request_card(c, r)))


# --- counter-offers and revisions -------------------------------------------------------

EDIT_2 = [
    change(ChangeKind.EDIT, 2, {"amount_minor": 275_000}, {**BEFORE_1, "amount_minor": 250_000})
]


def test_a_counter_offer_names_the_request_it_answers_and_who_answers_it() -> None:
    c = _active()
    r = request(2, changes=EDIT_2, proposed_by=CLIENT, counter_of=1)

    message = build_request_card(c, r)
    blocks = check_message(message)

    head = next(b for b in blocks if b.get("block_id") == "request_head")["text"]["text"]
    assert "proposed by <@UCLIENT01>" in head
    assert head.endswith("·  counter-offer to change request #1")
    who = next(b for b in blocks if b.get("block_id") == "request_who")
    assert who["elements"][0]["text"] == (
        "<@UFREELA01> accepts, declines or suggests changes  ·  <@UCLIENT01> can withdraw or revise"
    )
    assert labels(blocks) == ["Accept", "Decline", "Suggest changes", "Withdraw", "Revise"]
    assert message.text.endswith("1 change, waiting for <@UFREELA01>.")


def test_an_agencys_managers_answer_the_clients_counter_offer() -> None:
    c = contract(status=ContractStatus.ACTIVE, agency=True, milestones=[milestone(1)])
    r = request(2, changes=EDIT_2, proposed_by=CLIENT, counter_of=1)

    text = all_text(check_message(build_request_card(c, r)))

    assert "an agency manager (<@UMANAGE01> or <@UMANAGE02>) accepts, declines" in text


def test_a_countered_request_shows_its_counter_and_no_buttons() -> None:
    c = _active()
    r = request(
        changes=EDIT_2,
        status=RequestStatus.COUNTERED,
        decided_by=CLIENT,
        decided_at=later(hours=1),
        replaced_by=2,
    )

    message = build_request_card(c, r)
    blocks = check_message(message)

    assert buttons(blocks) == []
    text = all_text(blocks)
    assert ":arrows_counterclockwise: Countered" in text
    assert ":arrows_counterclockwise: *Countered* by <@UCLIENT01> <!date^" in text
    assert "as change request #2. Nothing changed unless that one is accepted." in text
    assert "If accepted" not in text
    assert message.text.endswith("was countered.")


def test_a_revised_request_says_which_one_replaced_it() -> None:
    c = _active()
    r = request(
        changes=EDIT_2,
        status=RequestStatus.WITHDRAWN,
        decided_by="UFREELA01",
        decided_at=later(hours=1),
        replaced_by=2,
    )

    text = all_text(check_message(build_request_card(c, r)))

    assert "*Withdrawn* by <@UFREELA01> <!date^" in text
    assert ": revised as change request #2." in text


def test_history_tells_counter_offers_and_revisions() -> None:
    c = _active()
    countered = event("request_countered", request_number=1, replaced_by=2)
    proposed = event(
        "request_proposed",
        request_number=2,
        changes=[{"kind": "edit", "milestone_number": 2, "fields": {}}],
        counters=1,
    )
    revised = event("request_withdrawn", actor="UFREELA01", request_number=2, replaced_by=3)

    assert event_text(c, countered, detailed=True) == (
        "<@UCLIENT01> answered change request #1 with a counter-offer, change request #2."
    )
    assert event_text(c, proposed, detailed=False) == (
        "<@UCLIENT01> proposed change request #2 (1 change, a counter-offer to #1)."
    )
    assert event_text(c, revised, detailed=False) == (
        "<@UFREELA01> revised change request #2 as change request #3."
    )
