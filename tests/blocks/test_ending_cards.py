"""The confirmation `end` answers with, the ending notice, the dispute card and its form."""

from __future__ import annotations

from datetime import timedelta

from domain.model import ContractStatus, Dispute, MilestoneStatus
from domain.services import EndHow, EndPreview
from handlers.blocks.contract import build_contract_card
from handlers.blocks.ending import (
    build_dispute_card,
    build_dispute_modal,
    build_end_confirmation,
    build_ending_card,
)
from handlers.blocks.work import build_work_card
from handlers.ids import Action
from handlers.payloads import ModalContext, ProposalRef
from tests.blocks.support import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    NOW,
    all_text,
    buttons,
    check_message,
    check_view,
    contract,
    labels,
    milestone,
    snap,
)


def preview(how: EndHow, held: int = 150_000) -> EndPreview:
    return EndPreview(
        contract_id=7,
        title="Website <redesign>",
        currency="USD",
        how=how,
        held_minor=held,
        milestone_number=1 if held else None,
        window_ends_at=NOW + timedelta(days=7) if how == EndHow.WINDOW else None,
        client_id=CLIENT,
        provider_ids=(FREELANCER,),
    )


def dispute(**extra: object) -> Dispute:
    values: dict[str, object] = {
        "id": 3,
        "contract_id": 7,
        "milestone_id": 101,
        "opened_by": CLIENT,
        "opened_at": NOW,
        "reason": "<!channel> pages missing",
        "held_minor": 150_000,
        "proposal_number": 0,
    }
    values.update(extra)
    return Dispute(**values)


def test_the_confirmation_states_the_money_effect_and_offers_end_contract() -> None:
    for how, says in [
        (EndHow.CLOSE, "closes at once"),
        (EndHow.REFUND, "goes back to <@UCLIENT01> at once"),
        (EndHow.WINDOW, "may accept the refund or dispute it until <!date^"),
    ]:
        blocks = check_message(
            build_end_confirmation(preview(how, 0 if how == EndHow.CLOSE else 150_000))
        )
        text = all_text(blocks)
        assert says in text
        assert "Website &lt;redesign&gt;" in text
        [end] = buttons(blocks)
        assert end["action_id"] == Action.END_CONTRACT
        assert end["text"]["text"].startswith("End contract")


def test_the_ending_notice_offers_accept_refund_and_dispute_while_the_window_runs() -> None:
    funded = milestone(1, status=MilestoneStatus.FUNDED)
    ending = contract(
        status=ContractStatus.ENDING,
        milestones=[funded, milestone(2)],
        ending_by=CLIENT,
        ending_started_at=NOW,
        ending_deadline_at=NOW + timedelta(days=7),
    )

    blocks = check_message(
        build_ending_card(ending, held_minor=150_000, milestone=funded, dispute=None)
    )

    assert labels(blocks) == ["Accept refund ($1,500.00)", "Dispute"]
    assert [b["action_id"] for b in buttons(blocks)] == [Action.ACCEPT_REFUND, Action.DISPUTE]
    assert "confirm" in buttons(blocks)[0], "money-moving buttons ask for confirmation"
    assert "is ending" in all_text(blocks)


def test_the_ending_notice_shows_the_outcome_without_buttons() -> None:
    refunded = milestone(1, status=MilestoneStatus.PENDING, refunded_at=NOW, funded_at=NOW)
    closed = contract(
        status=ContractStatus.CLOSED,
        milestones=[refunded],
        ending_by=CLIENT,
        ending_started_at=NOW,
        closed_at=NOW + timedelta(days=7),
    )

    blocks = check_message(
        build_ending_card(closed, held_minor=150_000, milestone=refunded, dispute=None)
    )

    assert buttons(blocks) == []
    assert "*Closed*" in all_text(blocks)
    disputed = milestone(1, status=MilestoneStatus.DISPUTED)
    frozen = contract(status=ContractStatus.ENDING, milestones=[disputed], ending_by=CLIENT)
    blocks = check_message(
        build_ending_card(
            frozen, held_minor=150_000, milestone=disputed, dispute=dispute(opened_by=FREELANCER)
        )
    )
    assert buttons(blocks) == [] and "Refund disputed" in all_text(blocks)


def test_the_dispute_card_escapes_the_reason_and_offers_the_proposal_it_shows() -> None:
    disputed = milestone(1, status=MilestoneStatus.DISPUTED)
    c = contract(status=ContractStatus.ACTIVE, milestones=[disputed])

    bare = check_message(build_dispute_card(c, disputed, dispute()))
    assert buttons(bare) == []
    assert "&lt;!channel&gt; pages missing" in all_text(bare)
    assert "<!channel>" not in all_text(bare)

    proposed = dispute(
        proposal_number=2,
        proposed_by=FREELANCER,
        proposed_at=NOW,
        proposed_to_provider_minor=60_000,
    )
    blocks = check_message(build_dispute_card(c, disputed, proposed))
    [agree] = buttons(blocks)
    assert agree["text"]["text"] == "Agree to split ($600.00 / $900.00)"
    assert ProposalRef.load(agree["value"]).proposal == 2
    assert "confirm" in agree

    settled = dispute(
        settled_at=NOW,
        settled_by=SYSTEM,
        settled_how="operator",
        to_provider_minor=0,
        to_client_minor=150_000,
        decision_reason="Mediation",
    )
    blocks = check_message(build_dispute_card(c, disputed, settled))
    assert buttons(blocks) == [] and "Decided by an operator" in all_text(blocks)


SYSTEM = "system"


def test_submitted_work_offers_dispute_beside_approve_and_request_changes() -> None:
    work = milestone(1, status=MilestoneStatus.SUBMITTED, submitted_at=NOW, auto_release_at=NOW)
    c = contract(status=ContractStatus.ACTIVE, milestones=[work])

    blocks = check_message(build_work_card(c, work))

    assert labels(blocks)[:3] == ["Approve & release", "Request changes", "Dispute"]
    disputed = milestone(1, status=MilestoneStatus.DISPUTED, submitted_at=NOW)
    frozen = check_message(build_work_card(c, disputed, dispute=dispute()))
    assert buttons(frozen) == [] and "Disputed" in all_text(frozen)


def test_the_contract_card_of_an_ending_contract_offers_the_providers_answer() -> None:
    funded = milestone(1, status=MilestoneStatus.FUNDED)
    ending = contract(
        status=ContractStatus.ENDING,
        milestones=[funded],
        ending_deadline_at=NOW + timedelta(days=7),
    )

    blocks = check_message(build_contract_card(snap(ending), now=NOW))

    assert "Ending" in all_text(blocks)
    assert labels(blocks) == ["Accept refund ($0.00)", "Dispute"]


def test_the_dispute_form_asks_for_a_reason() -> None:
    work = milestone(1, status=MilestoneStatus.SUBMITTED)
    c = contract(status=ContractStatus.ACTIVE, milestones=[work])

    view = check_view(
        build_dispute_modal(
            ModalContext(channel_id=CHANNEL, contract_id=7, milestone_id=work.id), c, work
        )
    )

    assert view["callback_id"] == "dispute"
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["reason"]
