"""Each person's choice of where they hear what needs them, and the direct messages the
services write with the change that made something wait for them (domain.notify)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import notify, reminders, services
from domain.db import read_transaction
from domain.model import IntentKind, Notify, OutboxMessage
from domain.policy import DEFAULT_POLICY
from domain.services import MilestoneEdit, Outcome
from domain.waiting import WaitingKind
from tests.conftest import Database
from tests.factories import (
    CLIENT,
    FREELANCER,
    MANAGER,
    MANAGER_2,
    NOW,
    TEAM,
    active_contract,
    submitted_contract,
)


def direct_messages(session: Session, kind: IntentKind = IntentKind.DIRECT) -> list[OutboxMessage]:
    with read_transaction(session):
        return list(
            session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
            )
        )


def told(session: Session) -> list[tuple[str | None, str | None]]:
    """(recipient, waiting kind) of every direct message written so far."""
    return [(m.user_id, m.body) for m in direct_messages(session)]


def choose(session: Session, user_id: str, choice: Notify) -> notify.Chosen:
    return notify.choose(session, user_id=user_id, team_id=TEAM, choice=choice, now=NOW)


def propose_edit(session: Session, contract_id: int, *, actor: str = FREELANCER) -> Outcome:
    outcome = services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=actor,
        changes=[MilestoneEdit(2, amount="3000")],
        now=NOW,
    )
    assert outcome.became_request and outcome.request_number is not None
    return outcome


def test_someone_who_never_chose_is_told_both_ways(session: Session) -> None:
    assert notify.choice_of(session, CLIENT) == Notify.BOTH


def test_a_choice_is_kept_and_choosing_it_again_changes_nothing(session: Session) -> None:
    first = choose(session, CLIENT, Notify.DIGEST)
    again = choose(session, CLIENT, Notify.DIGEST)
    back = choose(session, CLIENT, Notify.CHANNEL)

    assert (first.previous, first.choice, first.already_done) == (Notify.BOTH, Notify.DIGEST, False)
    assert again.already_done and again.choice == Notify.DIGEST
    assert (back.previous, back.choice) == (Notify.DIGEST, Notify.CHANNEL)
    assert notify.choice_of(session, CLIENT) == Notify.CHANNEL
    assert notify.choice_of(session, FREELANCER) == Notify.BOTH


def test_choosing_the_default_first_is_already_done(session: Session) -> None:
    assert choose(session, CLIENT, Notify.BOTH).already_done


def test_a_proposed_change_request_writes_a_direct_message_to_the_client_with_it(
    session: Session,
) -> None:
    contract_id = active_contract(session)
    before = len(direct_messages(session))
    outcome = services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, amount="3000")],
        now=NOW,
    )

    [message] = direct_messages(session)[before:]
    assert (message.user_id, message.body) == (CLIENT, WaitingKind.ANSWER_REQUEST.value)
    assert message.subject_id == outcome.request_id
    assert message.contract_id == contract_id and message.team_id == TEAM
    assert message.channel_id is None  # a DM: no channel hold stops it
    assert message.id in outcome.outbox_ids  # delivered right after the commit


def test_a_client_who_chose_the_channel_or_the_digest_gets_no_direct_message(
    session: Session,
) -> None:
    contract_id = active_contract(session)
    for choice in (Notify.CHANNEL, Notify.DIGEST):
        choose(session, CLIENT, choice)
        before = len(direct_messages(session))
        number = propose_edit(session, contract_id).request_number
        assert direct_messages(session)[before:] == []
        assert number is not None
        services.withdraw_request(
            session, contract_id=contract_id, number=number, actor_id=FREELANCER, now=NOW
        )


def test_a_client_who_chose_dm_gets_a_direct_message(session: Session) -> None:
    contract_id = active_contract(session)
    choose(session, CLIENT, Notify.DM)
    before = len(direct_messages(session))
    propose_edit(session, contract_id)
    assert [(m.user_id, m.body) for m in direct_messages(session)[before:]] == [
        (CLIENT, "answer_request")
    ]


def test_activation_asks_the_client_directly_to_fund_milestone_1(session: Session) -> None:
    active_contract(session)
    assert told(session) == [(CLIENT, "fund")]


def test_submitted_work_asks_the_client_directly_to_review_it(session: Session) -> None:
    submitted_contract(session)
    assert told(session)[-1] == (CLIENT, "review")


def test_a_release_asks_the_client_directly_to_fund_the_next_milestone(session: Session) -> None:
    contract_id = submitted_contract(session)
    before = len(direct_messages(session))
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    [message] = direct_messages(session)[before:]
    assert (message.user_id, message.body) == (CLIENT, "fund")


def test_the_automatic_release_asks_the_client_directly_to_fund_the_next(
    session: Session,
) -> None:
    submitted_contract(session)
    before = len(direct_messages(session))
    services.release_due(session, now=NOW + timedelta(days=15), policy=DEFAULT_POLICY, limit=10)
    assert told(session)[before:] == [(CLIENT, "fund")]


def test_an_agency_managers_request_asks_only_the_client(session: Session) -> None:
    contract_id = active_contract(session, agency=True)
    before = len(direct_messages(session))
    propose_edit(session, contract_id, actor=MANAGER)
    assert told(session)[before:] == [(CLIENT, "answer_request")]
    assert MANAGER_2 not in {user for user, _ in told(session)}


@pytest.mark.parametrize(
    ("choice", "kinds"),
    [
        (Notify.CHANNEL, [IntentKind.REMINDER]),
        (Notify.BOTH, [IntentKind.REMINDER, IntentKind.DIRECT_REMINDER]),
        (Notify.DM, [IntentKind.DIRECT_REMINDER]),
        (Notify.DIGEST, [IntentKind.REMINDER]),
    ],
)
def test_a_reminder_goes_to_the_thread_or_the_dm_as_the_person_chose(
    db: Database, choice: Notify, kinds: list[IntentKind]
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
        propose_edit(session, contract_id)
        choose(session, CLIENT, choice)
    # Tuesday 15:00 UTC: the first nudge is due, in the client's working hours (UTC).
    ids = reminders.send_due(
        db.sessions,
        now=NOW + DEFAULT_POLICY.request_reminder_first + timedelta(hours=5),
        time_zone_of=lambda user: None,
        policy=DEFAULT_POLICY,
    )
    with db.session() as session, read_transaction(session):
        queued = list(
            session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by("id"))
        )
    assert [m.kind for m in queued] == kinds
    assert {m.user_id for m in queued} == {CLIENT}
    assert [m.channel_id for m in queued if m.kind == IntentKind.DIRECT_REMINDER] in ([], [None])
