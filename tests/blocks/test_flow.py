"""Render every builder from real service results on SQLite, step by step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from domain import queries, services, snapshot
from domain.services import MilestoneEdit, NewMilestone
from handlers.blocks import (
    build_announcement,
    build_contract_card,
    build_edit_milestone_modal,
    build_history,
    build_home,
    build_propose_changes_modal,
    build_request_card,
    build_status,
    build_work_card,
)
from handlers.ids import Action
from handlers.payloads import ModalContext
from sandbox.emulator.blocks import find_button
from tests import factories as f

from .support import all_text, buttons, check_message, check_view


def _card(session: Session, contract_id: int) -> list[dict[str, Any]]:
    snap = snapshot.snapshot(session, contract_id)
    check_message(build_status(snap, now=f.NOW, viewer=f.CLIENT))
    blocks = check_message(build_contract_card(snap, now=f.NOW))
    session.rollback()  # end the read transaction before the next service call
    return blocks


def _everything(session: Session, contract_id: int) -> None:
    """Every message and view for the contract as it is now must be valid."""
    snap = snapshot.snapshot(session, contract_id)
    contract = snap.contract
    for request in queries.requests_of(session, contract_id):
        check_message(build_request_card(contract, request))
    for milestone in contract.milestones:
        if milestone.submitted_at is not None:
            check_message(build_work_card(contract, milestone))
    events = queries.history(session, contract_id)
    for event in events:
        message = build_announcement(contract, event)
        if message is not None:
            check_message(message)
    check_message(build_history(contract, events, now=f.NOW))
    ctx = ModalContext(channel_id=f.CHANNEL, contract_id=contract_id)
    check_view(build_propose_changes_modal(ctx, contract))
    for milestone in contract.live_milestones:
        check_view(build_edit_milestone_modal(ctx, contract, milestone))
    check_view(build_home(f.CLIENT, [snap], [(contract, e) for e in reversed(events)], now=f.NOW))
    session.rollback()


@pytest.mark.parametrize("agency", [False, True])
def test_a_contract_from_start_to_end_renders_valid_blocks_at_every_step(
    sqlite_session: Session, agency: bool
) -> None:
    s = sqlite_session
    provider = f.provider_of(agency)
    contract_id = f.new_contract(s, agency=agency, title="Site <!channel> & more")
    assert find_button(_card(s, contract_id), label_startswith="Add milestone")
    f.add(s, contract_id, "Design <b>", "1500", description="Wireframes & mockups")
    f.add(s, contract_id, "Build", "2500", actor=provider)
    services.change_milestones(
        s,
        contract_id=contract_id,
        actor_id=f.CLIENT,
        changes=[MilestoneEdit(2, amount="2600")],
        message="agreed <!here>",
        now=f.NOW,
    )
    services.agree_to_terms(s, contract_id=contract_id, actor_id=f.CLIENT, now=f.NOW)
    card = _card(s, contract_id)
    assert find_button(card, label_startswith="Agree").action_id == Action.AGREE
    _everything(s, contract_id)

    services.agree_to_terms(s, contract_id=contract_id, actor_id=provider, now=f.NOW)
    card = _card(s, contract_id)
    assert find_button(card, label_startswith="Fund").action_id == Action.FUND
    assert "Agree to terms" not in [b["text"]["text"] for b in buttons(card)]

    services.fund_milestone(s, contract_id=contract_id, actor_id=f.CLIENT, now=f.NOW)
    outcome = services.change_milestones(
        s,
        contract_id=contract_id,
        actor_id=provider,
        changes=[MilestoneEdit(1, amount="1800"), NewMilestone("Extra", "700", f.DUE)],
        message="More pages <!channel>",
        now=f.NOW,
    )
    assert outcome.became_request and outcome.request_id is not None
    _everything(s, contract_id)
    blocks = _request(s, contract_id, outcome.request_id)
    for word in ("Accept", "Decline", "Withdraw"):
        assert find_button(blocks, label_startswith=word)
    accept = next(b for b in buttons(blocks) if b["action_id"] == Action.ACCEPT)
    assert "$300.00" in accept["confirm"]["text"]["text"]

    services.accept_request(s, actor_id=f.CLIENT, request_id=outcome.request_id, now=f.NOW)
    _everything(s, contract_id)
    decided = _request(s, contract_id, outcome.request_id)
    assert buttons(decided) == []
    assert "*Accepted* by <@UCLIENT01>" in all_text(decided)

    services.submit_work(s, contract_id=contract_id, actor_id=provider, note="done", now=f.NOW)
    card = _card(s, contract_id)
    assert find_button(card, label_startswith="Approve").action_id == Action.APPROVE
    assert find_button(card, label_startswith="Request changes")
    _everything(s, contract_id)
    work = _work(s, contract_id, 0)
    assert find_button(work, label_startswith="Approve")
    assert find_button(work, label_startswith="Request changes")
    assert "Automatic release <!date^" in all_text(work)

    services.request_changes(
        s, contract_id=contract_id, actor_id=f.CLIENT, note="Bigger logo", now=f.NOW
    )
    _everything(s, contract_id)
    assert buttons(_work(s, contract_id, 0)) == []
    services.submit_work(s, contract_id=contract_id, actor_id=provider, note="again", now=f.NOW)
    services.approve_work(s, contract_id=contract_id, actor_id=f.CLIENT, now=f.NOW)
    _everything(s, contract_id)
    assert "*Approved and paid*" in all_text(_work(s, contract_id, 0))

    services.fund_milestone(s, contract_id=contract_id, actor_id=f.CLIENT, now=f.NOW)
    services.submit_work(s, contract_id=contract_id, actor_id=provider, now=f.NOW)
    later = f.NOW + timedelta(days=15)
    due = queries.due_auto_releases(s, now=later)
    s.rollback()
    for milestone_id in due:
        services.auto_release(s, milestone_id=milestone_id, now=later)
    _everything(s, contract_id)
    assert "*Paid automatically*" in all_text(_work(s, contract_id, 1))

    services.fund_milestone(s, contract_id=contract_id, actor_id=f.CLIENT, now=later)
    services.end_contract(s, contract_id=contract_id, actor_id=provider, now=later)
    card = _card(s, contract_id)
    assert buttons(card) == []
    text = all_text(card)
    assert "<!channel>" not in text and "Site &lt;!channel&gt; &amp; more" in text
    assert "*Refunded*\n$700.00" in text
    _everything(s, contract_id)


def _request(session: Session, contract_id: int, request_id: int) -> list[dict[str, Any]]:
    contract = queries.load_contract(session, contract_id)
    request = queries.load_request(session, request_id)
    blocks = check_message(build_request_card(contract, request))
    session.rollback()
    return blocks


def _work(session: Session, contract_id: int, index: int) -> list[dict[str, Any]]:
    contract = queries.load_contract(session, contract_id)
    blocks = check_message(build_work_card(contract, contract.milestones[index]))
    session.rollback()
    return blocks
