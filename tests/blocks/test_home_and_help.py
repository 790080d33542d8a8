from __future__ import annotations

from slack_sdk.models.views import View

from domain.ledger import Escrow
from domain.model import ChangeKind, ContractStatus, MilestoneStatus
from domain.text import Person, said
from handlers import blocks
from handlers.blocks import build_error, build_help, build_home, build_notice
from handlers.ids import Action

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
    milestone,
    request,
    snap,
)


def test_home_lists_what_waits_for_the_user_with_the_card_buttons() -> None:
    to_fund = snap(
        contract(status=ContractStatus.ACTIVE, milestones=[milestone(1)]),
        escrow=Escrow(),
    )
    pending = request(
        2,
        changes=[change(ChangeKind.EDIT, 1, {"amount_minor": 200_000}, {"amount_minor": 150_000})],
    )
    funded = contract(
        id=8,
        title="App <!here>",
        status=ContractStatus.ACTIVE,
        milestones=[milestone(1, status=MilestoneStatus.FUNDED)],
    )
    to_answer = snap(funded, pending=[pending], escrow=Escrow(funded_minor=150_000))
    negotiating = snap(contract(id=9, milestones=[milestone(1)], client_agreed_at=NOW))
    recent = [(to_fund.contract, event("milestone_funded", milestone_number=1, amount_minor=1))]

    view = build_home(CLIENT, [to_fund, to_answer, negotiating], recent, now=NOW)
    raw = check_view(view)
    assert raw["type"] == "home"
    text = all_text(raw["blocks"])
    assert "Waiting for you" in text
    assert ":point_right: Fund milestone *1 · Milestone 1* ($1,500.00)." in text
    assert (
        f":point_right: Accept or decline change request *#2* from <@{FREELANCER}>: "
        "edit 1 (amount)." in text
    )
    assert "App &lt;!here&gt;" in text and "<!here>" not in text
    labels = [b["text"]["text"] for b in buttons(raw["blocks"])]
    assert labels == ["Fund milestone 1 ($1,500.00)", "Accept (adds $500.00 to escrow)", "Decline"]
    accept = buttons(raw["blocks"])[1]
    assert accept["action_id"] == Action.ACCEPT and "confirm" in accept
    assert "you're the client" in text
    assert "$1,500.00 in escrow" in text
    assert "Recent activity" in text
    assert "is funded" not in text  # Home shows the history line, not the announcement
    assert "<@UCLIENT01> funded milestone 1" in text


def test_home_for_someone_with_nothing_to_do() -> None:
    raw = check_view(build_home(FREELANCER, [], [], now=NOW))
    text = all_text(raw["blocks"])
    assert "Nothing needs you right now." in text
    assert "No contracts yet." in text
    assert "No activity yet." in text


def test_home_stays_within_100_blocks() -> None:
    items = [
        snap(contract(id=n, status=ContractStatus.ACTIVE, milestones=[milestone(1)]))
        for n in range(1, 80)
    ]
    recent = [(items[0].contract, event("contract_created", title="X" * 200))] * 30
    raw = check_view(build_home(CLIENT, items, recent, now=NOW))
    assert len(raw["blocks"]) <= 100
    assert "Showing 1–20 of 79 contracts, open first." in all_text(raw["blocks"])
    assert labels(raw["blocks"])[-1] == "Next →"


def test_help_and_notices() -> None:
    blocks = check_message(build_help())
    text = all_text(blocks)
    assert "/milestone new" in text and "/milestone approve" in text
    assert "`contract=&lt;id&gt;`" in text and "<id>" not in text
    topic = check_message(build_help("fund"))
    assert topic[0]["text"]["text"] == "*Usage:* `/milestone fund`"
    notice = build_notice(said("Only ", Person("U1"), " can fund contract 3 (Site <!channel>)."))
    assert notice.text == "Only <@U1> can fund contract 3 (Site &lt;!channel&gt;)."
    check_message(notice)
    error = check_message(build_error("Sorry, that failed.", reference="abc123"))
    assert "Reference: `abc123`" in all_text(error)


def test_notice_modal_for_clicks_without_a_channel() -> None:
    view = blocks.build_notice_modal(said("Only ", Person("U1"), " can fund this. <!channel>"))
    raw = view.to_dict()
    assert View(**raw).to_dict() == raw
    assert raw["type"] == "modal" and raw["close"]["text"] == "OK" and "submit" not in raw
    assert raw["blocks"][0]["text"]["text"] == "Only <@U1> can fund this. &lt;!channel&gt;"


def test_the_blocks_facade_offers_every_builder() -> None:
    for name in blocks.__all__:
        assert hasattr(blocks, name)
