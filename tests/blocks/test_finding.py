"""Finding things: App Home with every waiting item and its pages, `/milestone list`,
and the choice of contract offered as buttons."""

from __future__ import annotations

from domain.ledger import Escrow
from domain.model import ChangeKind, ContractStatus, MilestoneStatus
from domain.waiting import WaitingItem, WaitingKind, waiting_on
from handlers.blocks import build_home
from handlers.blocks.finding import (
    MAX_LISTED,
    build_contract_choice,
    build_contract_list,
    waiting_text,
)
from handlers.blocks.home import CONTRACTS_PER_PAGE, WAITING_PER_PAGE
from handlers.ids import Action
from handlers.payloads import ContractPick, HomePage

from .support import (
    CLIENT,
    FREELANCER,
    NOW,
    all_text,
    buttons,
    change,
    check_message,
    check_view,
    contract,
    event,
    labels,
    later,
    milestone,
    request,
    snap,
)


def to_fund(contract_id: int) -> WaitingItem:
    c = contract(
        id=contract_id,
        title=f"Shop {contract_id}",
        status=ContractStatus.ACTIVE,
        milestones=[milestone(1, id=1000 + contract_id)],
    )
    return WaitingItem(WaitingKind.FUND, c, (CLIENT,), milestone=c.milestones[0], since=NOW)


def test_submitted_work_and_a_pending_request_on_one_contract_are_two_items_on_home() -> None:
    submitted = milestone(
        1,
        status=MilestoneStatus.SUBMITTED,
        title="Design",
        auto_release_at=later(days=14),
        submitted_at=NOW,
        submission_count=1,
    )
    c = contract(status=ContractStatus.ACTIVE, milestones=[submitted, milestone(2)])
    pending = request(3, changes=[change(ChangeKind.EDIT, 2, {"title": "Build v2"})])
    items = waiting_on(c, [pending], now=NOW)

    raw = check_view(build_home(CLIENT, [snap(c, pending=[pending])], [], now=NOW, waiting=items))
    text = all_text(raw["blocks"])

    assert [item.kind for item in items] == [WaitingKind.ANSWER_REQUEST, WaitingKind.REVIEW]
    assert "Waiting for you (2)" in text
    assert "Review milestone *1 · Design*: approve or request changes" in text
    assert f"Accept or decline change request *#3* from <@{FREELANCER}>" in text
    shown = labels(raw["blocks"])
    assert shown[:4] == ["Accept", "Decline", "Approve & release", "Request changes"]


def test_home_pages_through_many_waiting_items_and_contracts() -> None:
    items = [to_fund(n) for n in range(1, 46)]
    contracts = [snap(item.contract, escrow=Escrow()) for item in items]
    recent = [(contracts[0].contract, event("contract_created", title="Shop 1"))]

    pages = []
    for page in range(3):
        shown = contracts[page * CONTRACTS_PER_PAGE : (page + 1) * CONTRACTS_PER_PAGE]
        view = build_home(
            CLIENT,
            shown,
            recent,
            now=NOW,
            waiting=items,
            page=page,
            contracts_total=len(contracts),
        )
        pages.append(check_view(view))

    first, second, last = (all_text(p["blocks"]) for p in pages)
    assert "Waiting for you (45)" in first and "page 1 of 3" in first
    assert "Showing 1–20 of 45 waiting items." in first
    assert "Showing 21–40 of 45 waiting items." in second
    assert "Showing 41–45 of 45 waiting items." in last
    assert "Showing 1–20 of 45 contracts, open first." in first
    assert "Showing 41–45 of 45 contracts, open first." in last
    assert "*Shop 21*" in second and "*Shop 20*" not in second
    assert "Recent activity" in first and "Recent activity" not in second
    fund_buttons = [b for b in buttons(pages[0]["blocks"]) if b["action_id"] == Action.FUND]
    assert len(fund_buttons) == WAITING_PER_PAGE
    for raw, expected in zip(pages, [[1], [0, 2], [1]], strict=True):
        assert len(raw["blocks"]) <= 100
        pager = [b for b in buttons(raw["blocks"]) if b["action_id"].startswith("home_page")]
        assert [HomePage.load(b["value"]).page for b in pager] == expected
    assert [b["text"]["text"] for b in buttons(pages[1]["blocks"])][-2:] == [
        "← Previous",
        "Next →",
    ]


def test_a_page_past_the_end_shows_the_last_page() -> None:
    items = [to_fund(n) for n in range(1, 26)]

    raw = check_view(build_home(CLIENT, [], [], now=NOW, waiting=items, page=9))

    assert "Showing 21–25 of 25 waiting items." in all_text(raw["blocks"])


def test_home_with_one_page_has_no_pager() -> None:
    raw = check_view(build_home(CLIENT, [], [], now=NOW, waiting=[to_fund(1)]))

    assert not any(b["action_id"].startswith("home_page") for b in buttons(raw["blocks"]))
    assert "page 1 of" not in all_text(raw["blocks"])


def test_a_waiting_item_names_who_owes_it_to_others() -> None:
    item = to_fund(4)

    assert waiting_text(item, viewer=FREELANCER) == (
        f"<@{CLIENT}> funds milestone *1 · Milestone 1* ($1,500.00)."
    )
    assert waiting_text(item, viewer=CLIENT) == "Fund milestone *1 · Milestone 1* ($1,500.00)."


def test_the_list_shows_each_contract_with_what_waits_and_for_whom() -> None:
    active = contract(
        id=3,
        title="Shop <!here>",
        status=ContractStatus.ACTIVE,
        milestones=[milestone(1, status=MilestoneStatus.FUNDED)],
    )
    closed = contract(id=2, status=ContractStatus.CLOSED, channel_id="C0OTHER")
    waiting = {3: waiting_on(active, [], now=NOW), 2: []}

    blocks = check_message(build_contract_list(CLIENT, [active, closed], waiting, total=2, now=NOW))
    text = all_text(blocks)

    assert "*Your contracts* · 2 contracts, open first" in text
    assert "*Shop &lt;!here&gt;*  ·  contract 3  ·  <#C0001>" in text
    assert f"<@{FREELANCER}> delivers milestone *1 · Milestone 1*." in text
    assert "contract 2  ·  <#C0OTHER>" in text and "Closed: read-only." in text
    assert "you're the client" in text
    assert text.index("contract 3") < text.index("contract 2")


def test_the_list_is_capped_with_a_count_of_the_rest() -> None:
    many = [contract(id=n, status=ContractStatus.ACTIVE) for n in range(1, 40)]

    blocks = check_message(build_contract_list(CLIENT, many, {}, total=39, now=NOW))

    assert f"…and {39 - MAX_LISTED} more." in all_text(blocks)
    assert sum(1 for b in blocks if b["block_id"].startswith("list_contract_")) == MAX_LISTED


def test_the_choice_offers_one_button_per_contract_carrying_the_command() -> None:
    first = contract(id=4, title="Shop")
    second = contract(id=5, title="App")

    blocks = check_message(build_contract_choice('submit "It is done"', CLIENT, [first, second]))

    offered = buttons(blocks)
    assert [b["text"]["text"] for b in offered] == ["Use contract 4", "Use contract 5"]
    assert all(b["action_id"] == Action.CHOOSE_CONTRACT for b in offered)
    picks = [ContractPick.load(b["value"]) for b in offered]
    assert [(p.text, p.contract_id, p.user_id) for p in picks] == [
        ('submit "It is done"', 4, CLIENT),
        ('submit "It is done"', 5, CLIENT),
    ]
    assert '`/milestone submit "It is done"`' in all_text(blocks)


def test_a_command_too_long_for_a_button_is_answered_with_the_ids_to_add() -> None:
    long_text = 'submit "' + "x" * 1990 + '"'

    blocks = check_message(build_contract_choice(long_text, CLIENT, [contract(id=4)]))

    assert buttons(blocks) == []
    assert "Add `contract=4` to the command." in all_text(blocks)


def test_an_ending_notice_on_home_offers_accept_refund_and_dispute() -> None:
    funded = milestone(1, status=MilestoneStatus.FUNDED, funded_at=NOW)
    c = contract(
        status=ContractStatus.ENDING,
        milestones=[funded],
        ending_started_at=NOW,
        ending_by=CLIENT,
        ending_deadline_at=later(days=7),
    )
    items = [i for i in waiting_on(c, [], now=NOW) if FREELANCER in i.owed_by]

    raw = check_view(build_home(FREELANCER, [], [], now=NOW, waiting=items))

    assert [i.kind for i in items] == [WaitingKind.ENDING_NOTICE]
    assert "ended the contract: accept the refund or dispute it by" in all_text(raw["blocks"])
    assert labels(raw["blocks"]) == ["Accept refund ($1,500.00)", "Dispute"]
