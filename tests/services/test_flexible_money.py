"""Partial release, bonus and more time to review: the services, on SQLite and
PostgreSQL; and their races on PostgreSQL, each call on its own connection."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import ledger, queries, services
from domain.db import read_transaction
from domain.errors import (
    ContractClosed,
    DomainError,
    InvalidAmount,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    NotAllowed,
    NotAParty,
    WrongPhase,
)
from domain.model import (
    SYSTEM_ACTOR,
    Event,
    LedgerEntry,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    Reminder,
    ReminderKind,
    ReminderState,
)
from domain.policy import DEFAULT_POLICY
from domain.verify import verify
from tests.conftest import Database
from tests.factories import (
    CLIENT,
    FREELANCER,
    MANAGER,
    MEMBER,
    NOW,
    OUTSIDER,
    active_contract,
    add,
    funded_contract,
    later,
    new_contract,
    provider_of,
    submitted_contract,
)
from tests.services.support import exported, refuse
from tests.services.test_concurrency import Answer, race, took_effect

REVIEW = DEFAULT_POLICY.auto_release_period
DEADLINE = NOW + REVIEW  # the automatic release of work submitted at NOW


# --------------------------------------------------------------------------------------
# Reading back


def milestone_row(session: Session, contract_id: int, number: int = 1) -> Milestone:
    with read_transaction(session):
        found = session.scalar(
            select(Milestone)
            .where(Milestone.contract_id == contract_id, Milestone.number == number)
            .execution_options(populate_existing=True)
        )
        assert found is not None
        session.expunge(found)
        return found


def entries(session: Session, contract_id: int) -> list[tuple[str, str, int, str]]:
    """(kind, key, amount, actor) of every ledger entry, in order."""
    with read_transaction(session):
        return [
            (e.kind.value, e.key, e.amount_minor, e.actor)
            for e in ledger.entries(session, contract_id)
        ]


def history(session: Session, contract_id: int, kind: str) -> list[Event]:
    with read_transaction(session):
        return [e for e in queries.history(session, contract_id) if e.kind == kind]


def balance(session: Session, contract_id: int) -> int:
    with read_transaction(session):
        return ledger.escrow_of(session, contract_id).balance_minor


def clean(session: Session) -> None:
    """`ledger verify` finds nothing wrong."""
    with read_transaction(session):
        assert [str(d) for d in verify(session)] == []


def release_part(
    session: Session, contract_id: int, amount: str, *, number: int = 1, actor: str = CLIENT
) -> services.Outcome:
    return services.release_part(
        session,
        contract_id=contract_id,
        actor_id=actor,
        number=number,
        amount=amount,
        now=later(hours=1),
    )


# --------------------------------------------------------------------------------------
# Partial release


def test_client_releases_part_of_a_funded_milestone_and_the_rest_stays_held(
    session: Session,
) -> None:
    contract_id = funded_contract(session)
    mid = milestone_row(session, contract_id).id

    outcome = release_part(session, contract_id, "500")

    assert not outcome.already_done
    assert "$500.00" in outcome.summary and "$1,000.00 stays in escrow" in outcome.summary
    m = milestone_row(session, contract_id)
    assert m.status == MilestoneStatus.FUNDED
    assert (m.released_early_minor, m.still_held_minor) == (50_000, 100_000)
    assert entries(session, contract_id)[-1] == (
        "release",
        f"release:{mid}:part:1",
        50_000,
        CLIENT,
    )
    assert balance(session, contract_id) == 100_000
    [event] = history(session, contract_id, "milestone_partly_released")
    assert event.milestone_number == 1 and event.actor == CLIENT
    assert (event.data["amount_minor"], event.data["held_minor"]) == (50_000, 100_000)
    shown = exported(session, contract_id)
    assert shown["escrow"]["released_minor"] == 50_000
    assert shown["escrow"]["balance_minor"] == 100_000
    assert shown["milestones"][0]["released_early_minor"] == 50_000
    clean(session)


def test_approval_after_partial_releases_releases_only_the_rest(session: Session) -> None:
    contract_id = submitted_contract(session)
    mid = milestone_row(session, contract_id).id
    release_part(session, contract_id, "500")
    release_part(session, contract_id, "250.50")

    outcome = services.approve_work(
        session, contract_id=contract_id, actor_id=CLIENT, now=later(hours=2)
    )

    assert "$749.50 released" in outcome.summary
    assert [(key, amount) for kind, key, amount, _ in entries(session, contract_id)[1:]] == [
        (f"release:{mid}:part:1", 50_000),
        (f"release:{mid}:part:2", 25_050),
        (f"release:{mid}", 74_950),
    ]
    assert milestone_row(session, contract_id).status == MilestoneStatus.RELEASED
    [released] = history(session, contract_id, "milestone_released")
    assert released.data["amount_minor"] == 74_950
    assert balance(session, contract_id) == 0
    assert exported(session, contract_id)["escrow"]["released_minor"] == 150_000
    clean(session)


def test_automatic_release_after_a_partial_release_releases_the_rest(session: Session) -> None:
    contract_id = submitted_contract(session)
    release_part(session, contract_id, "1,000")

    [outcome] = services.release_due(session, now=DEADLINE)

    assert "$500.00" in outcome.summary
    releases = [e for e in entries(session, contract_id) if e[0] == "release"]
    assert [(amount, actor) for _, _, amount, actor in releases] == [
        (100_000, CLIENT),
        (50_000, SYSTEM_ACTOR),
    ]
    assert milestone_row(session, contract_id).released_automatically
    clean(session)


def test_releasing_everything_held_for_submitted_work_is_an_approval(session: Session) -> None:
    contract_id = submitted_contract(session)
    release_part(session, contract_id, "500")

    outcome = release_part(session, contract_id, "1000")

    assert "counts as approving" in outcome.summary
    m = milestone_row(session, contract_id)
    assert m.status == MilestoneStatus.RELEASED and not m.released_automatically
    assert [e[2] for e in entries(session, contract_id) if e[0] == "release"] == [50_000, 100_000]
    assert len(history(session, contract_id, "milestone_released")) == 1
    clean(session)


def test_releasing_everything_held_before_submission_is_refused(session: Session) -> None:
    contract_id = funded_contract(session)
    message = refuse(
        session,
        InvalidAmount,
        services.release_part,
        contract_id=contract_id,
        actor_id=CLIENT,
        number=1,
        amount="1500",
        now=later(1),
    )
    assert "everything held" in message and "submitted" in message


@pytest.mark.parametrize(
    ("amount", "error", "words"),
    [
        ("1500.01", InvalidAmount, "Only $1,500.00 is held"),
        ("0", InvalidAmount, ""),
        ("-5", InvalidAmount, ""),
        ("ten", InvalidAmount, ""),
        ("1.234", InvalidAmount, ""),
    ],
)
def test_a_partial_release_of_an_impossible_amount_is_refused(
    session: Session, amount: str, error: type[DomainError], words: str
) -> None:
    contract_id = funded_contract(session)
    message = refuse(
        session,
        error,
        services.release_part,
        contract_id=contract_id,
        actor_id=CLIENT,
        number=1,
        amount=amount,
        now=later(1),
    )
    assert words in message


def test_only_the_client_releases_escrow_early(session: Session) -> None:
    contract_id = funded_contract(session, agency=True)
    for person, error in ((MANAGER, NotAllowed), (MEMBER, NotAllowed), (OUTSIDER, NotAParty)):
        refuse(
            session,
            error,
            services.release_part,
            contract_id=contract_id,
            actor_id=person,
            number=1,
            amount="100",
            now=later(1),
        )


def test_only_a_milestone_in_progress_can_be_partly_released(session: Session) -> None:
    contract_id = funded_contract(session)
    message = refuse(
        session,
        InvalidTransition,
        services.release_part,
        contract_id=contract_id,
        actor_id=CLIENT,
        number=2,
        amount="100",
        now=later(1),
    )
    assert "Milestone 2 is not funded yet" in message
    negotiating = new_contract(session)
    add(session, negotiating)
    refuse(
        session,
        WrongPhase,
        services.release_part,
        contract_id=negotiating,
        actor_id=CLIENT,
        number=1,
        amount="100",
        now=later(1),
    )


def test_ending_after_a_partial_release_refunds_only_what_is_still_held(
    session: Session,
) -> None:
    contract_id = funded_contract(session)
    release_part(session, contract_id, "400")

    services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=later(2))

    refunds = [e for e in entries(session, contract_id) if e[0] == "refund"]
    if refunds:  # the provider gives the escrow back at once
        assert [e[2] for e in refunds] == [110_000]
    clean(session)


# --------------------------------------------------------------------------------------
# Bonus


def test_a_bonus_is_paid_at_once_outside_escrow(session: Session) -> None:
    contract_id = funded_contract(session)

    outcome = services.pay_bonus(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        amount="$200",
        note="Thanks for the *quick* turnaround <!here>",
        now=later(1),
    )
    services.pay_bonus(session, contract_id=contract_id, actor_id=CLIENT, amount="50", now=later(2))

    assert "bonus of $200.00" in outcome.summary
    assert [(kind, key, amount) for kind, key, amount, _ in entries(session, contract_id)] == [
        ("fund", f"fund:{milestone_row(session, contract_id).id}", 150_000),
        ("bonus", f"bonus:{contract_id}:1", 20_000),
        ("bonus", f"bonus:{contract_id}:2", 5_000),
    ]
    shown = exported(session, contract_id)
    assert shown["escrow"] == {
        "funded_minor": 150_000,
        "released_minor": 0,
        "refunded_minor": 0,
        "balance_minor": 150_000,
    }
    bonuses = [e for e in shown["ledger"] if e["kind"] == "bonus"]
    assert [(e["milestone_number"], e["amount_minor"], e["actor"]) for e in bonuses] == [
        (None, 20_000, CLIENT),
        (None, 5_000, CLIENT),
    ]
    paid = history(session, contract_id, "bonus_paid")
    assert [e.data["amount_minor"] for e in paid] == [20_000, 5_000]
    assert paid[0].data["note"] == "Thanks for the *quick* turnaround <!here>"
    assert paid[0].milestone_number is None
    clean(session)


def test_a_bonus_can_be_paid_when_no_milestone_is_in_progress(session: Session) -> None:
    contract_id = active_contract(session, agency=True)
    services.pay_bonus(
        session, contract_id=contract_id, actor_id=CLIENT, amount="300", now=later(1)
    )
    assert balance(session, contract_id) == 0
    clean(session)


def test_a_bonus_is_refused_from_the_provider_before_the_start_after_the_end_and_when_wrong(
    session: Session,
) -> None:
    contract_id = active_contract(session)

    def bonus(error: type[DomainError], cid: int = contract_id, **kwargs: str) -> str:
        given = {"actor_id": CLIENT, "amount": "100", **kwargs}
        return refuse(session, error, services.pay_bonus, contract_id=cid, now=later(1), **given)

    bonus(NotAllowed, actor_id=FREELANCER)
    bonus(NotAParty, actor_id=OUTSIDER)
    bonus(InvalidAmount, amount="0")
    bonus(InvalidAmount, amount="99999999999")
    bonus(LimitExceeded, note="n" * 2001)
    negotiating = new_contract(session)
    assert "once it is active" in bonus(WrongPhase, negotiating)
    services.end_contract(session, contract_id=contract_id, actor_id=CLIENT, now=later(2))
    bonus(ContractClosed)


# --------------------------------------------------------------------------------------
# More time to review


def extend(
    session: Session, contract_id: int, actor: str, days: int | None = None
) -> services.Outcome:
    return services.extend_review(
        session, contract_id=contract_id, actor_id=actor, days=days, now=later(hours=3)
    )


def give(session: Session, contract_id: int, actor: str = FREELANCER) -> services.Outcome:
    return services.give_more_time(
        session,
        contract_id=contract_id,
        milestone_id=milestone_row(session, contract_id).id,
        actor_id=actor,
        now=later(hours=4),
    )


def keep(session: Session, contract_id: int, actor: str = FREELANCER) -> services.Outcome:
    return services.keep_review_date(
        session,
        contract_id=contract_id,
        milestone_id=milestone_row(session, contract_id).id,
        actor_id=actor,
        now=later(hours=4),
    )


def review_reminders(session: Session, milestone_id: int) -> list[tuple[object, object]]:
    """(due_at, deadline_at) of the pending review reminders of the milestone."""
    with read_transaction(session):
        return [
            (r.due_at, r.deadline_at)
            for r in session.scalars(
                select(Reminder)
                .where(
                    Reminder.kind == ReminderKind.REVIEW,
                    Reminder.subject_id == milestone_id,
                    Reminder.state == ReminderState.PENDING,
                )
                .order_by(Reminder.due_at)
            )
        ]


def test_the_release_date_moves_only_when_the_provider_gives_the_time_asked_for(
    session: Session,
) -> None:
    contract_id = submitted_contract(session)
    mid = milestone_row(session, contract_id).id

    asked = extend(session, contract_id, CLIENT)

    assert "7 more days" in asked.summary
    m = milestone_row(session, contract_id)
    assert (m.auto_release_at, m.extension_waiting, m.extension_asks) == (DEADLINE, 7, 1)
    assert services.release_due(session, now=DEADLINE - timedelta(seconds=1)) == []

    given = give(session, contract_id)

    assert not given.already_done
    moved = DEADLINE + timedelta(days=7)
    m = milestone_row(session, contract_id)
    assert (m.auto_release_at, m.extension_waiting) == (moved, None)
    [event] = history(session, contract_id, "review_extended")
    assert (event.actor, event.data["days"], event.data["asked_days"]) == (FREELANCER, 7, 7)
    assert len(history(session, contract_id, "review_time_asked")) == 1
    # The reminders before the automatic release follow the new date.
    assert review_reminders(session, mid) == [
        (moved - timedelta(days=7), moved),
        (moved - timedelta(days=1), moved),
    ]
    # Nothing is released at the old date; at the new one it is.
    assert services.release_due(session, now=DEADLINE) == []
    [released] = services.release_due(session, now=moved)
    assert "automatically" in released.summary
    assert exported(session, contract_id)["milestones"][0]["auto_release_at"] is not None
    clean(session)


def test_the_provider_may_keep_the_date_and_the_client_asks_at_most_twice(
    session: Session,
) -> None:
    contract_id = submitted_contract(session, agency=True)

    extend(session, contract_id, CLIENT, 10)
    declined = keep(session, contract_id, MANAGER)
    assert "kept the review date" in declined.summary
    assert milestone_row(session, contract_id).auto_release_at == DEADLINE
    assert len(history(session, contract_id, "review_time_declined")) == 1

    extend(session, contract_id, CLIENT, 3)
    give(session, contract_id, MANAGER)
    assert milestone_row(session, contract_id).auto_release_at == DEADLINE + timedelta(days=3)

    message = refuse(
        session,
        InvalidTransition,
        services.extend_review,
        contract_id=contract_id,
        actor_id=CLIENT,
        days=None,
        now=later(5),
    )
    assert "2 times" in message
    # A new submission starts a new count.
    services.request_changes(
        session, contract_id=contract_id, actor_id=CLIENT, note="Header", now=later(6)
    )
    services.submit_work(session, contract_id=contract_id, actor_id=MEMBER, now=later(7))
    assert not extend(session, contract_id, CLIENT).already_done


def test_the_provider_gives_time_unasked_at_once(session: Session) -> None:
    contract_id = submitted_contract(session)

    outcome = extend(session, contract_id, FREELANCER, 5)

    assert "5 more days" in outcome.summary
    assert milestone_row(session, contract_id).auto_release_at == DEADLINE + timedelta(days=5)
    [event] = history(session, contract_id, "review_extended")
    assert event.data["asked_days"] is None
    clean(session)


def test_the_provider_typing_extend_answers_the_ask_waiting(session: Session) -> None:
    contract_id = submitted_contract(session)
    extend(session, contract_id, CLIENT, 4)

    extend(session, contract_id, FREELANCER)

    m = milestone_row(session, contract_id)
    assert (m.auto_release_at, m.extension_waiting) == (DEADLINE + timedelta(days=4), None)


def test_repeats_of_an_ask_and_of_its_answer_change_nothing(session: Session) -> None:
    contract_id = submitted_contract(session)
    extend(session, contract_id, CLIENT)
    assert extend(session, contract_id, CLIENT).already_done
    refuse(
        session,
        InvalidTransition,
        services.extend_review,
        contract_id=contract_id,
        actor_id=CLIENT,
        days=9,
        now=later(4),
    )
    give(session, contract_id)
    again = give(session, contract_id)
    assert again.already_done and "already answered" in again.summary
    assert keep(session, contract_id).already_done
    assert milestone_row(session, contract_id).auto_release_at == DEADLINE + timedelta(days=7)
    assert len(history(session, contract_id, "review_extended")) == 1


def test_wrong_people_and_wrong_moments_are_refused(session: Session) -> None:
    contract_id = submitted_contract(session, agency=True)
    mid = milestone_row(session, contract_id).id
    for person, error in ((OUTSIDER, NotAParty), (MEMBER, NotAllowed)):
        refuse(
            session,
            error,
            services.extend_review,
            contract_id=contract_id,
            actor_id=person,
            days=None,
            now=later(4),
        )
    extend(session, contract_id, CLIENT)
    for service in (services.give_more_time, services.keep_review_date):
        refuse(
            session,
            NotAllowed,
            service,
            contract_id=contract_id,
            milestone_id=mid,
            actor_id=CLIENT,
            now=later(4),
        )
    for days in (0, 31):
        refuse(
            session,
            InvalidInput,
            services.extend_review,
            contract_id=contract_id,
            actor_id=MANAGER,
            days=days,
            now=later(4),
        )
    funded = funded_contract(session)
    message = refuse(
        session,
        InvalidTransition,
        services.extend_review,
        contract_id=funded,
        actor_id=CLIENT,
        days=None,
        now=later(4),
    )
    assert "while work is submitted" in message


def test_an_ask_left_unanswered_ends_with_the_review(session: Session) -> None:
    contract_id = submitted_contract(session)
    extend(session, contract_id, CLIENT)
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(5))

    late = give(session, contract_id)

    assert late.already_done and "no longer waiting for review" in late.summary
    assert milestone_row(session, contract_id).extension_waiting is None
    assert history(session, contract_id, "review_extended") == []


# --------------------------------------------------------------------------------------
# `ledger verify` reads the new entries


def test_verify_reports_partial_releases_that_disagree_with_the_milestone(
    session: Session,
) -> None:
    contract_id = funded_contract(session)
    release_part(session, contract_id, "500")
    with session.begin():
        m = session.scalar(select(Milestone).where(Milestone.contract_id == contract_id))
        assert m is not None
        m.released_early_minor = 0
    with read_transaction(session):
        problems = [str(d) for d in verify(session)]
    assert any("released early" in p for p in problems), problems


def test_verify_reports_a_bonus_entry_with_a_wrong_key(session: Session) -> None:
    contract_id = active_contract(session)
    services.pay_bonus(session, contract_id=contract_id, actor_id=CLIENT, amount="5", now=later(1))
    with session.begin():
        entry = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.BONUS))
        assert entry is not None
        entry.key = "bonus:x"
    with read_transaction(session):
        problems = [str(d) for d in verify(session)]
    assert any("bonus entry" in p for p in problems), problems


# --------------------------------------------------------------------------------------
# PostgreSQL races: each call on its own connection, at the same moment

ROUNDS = 10


@pytest.mark.postgres
def test_giving_more_time_racing_the_automatic_release_has_one_outcome(pg: Database) -> None:
    winners: set[str] = set()
    for round_no in range(ROUNDS):
        agency = round_no % 2 == 1
        with pg.session() as session:
            contract_id = submitted_contract(session, agency=agency)
            services.extend_review(
                session, contract_id=contract_id, actor_id=CLIENT, now=later(hours=1)
            )
            mid = milestone_row(session, contract_id).id

        answers = race(
            pg,
            partial(
                services.give_more_time,
                contract_id=contract_id,
                milestone_id=mid,
                actor_id=provider_of(agency),
                now=DEADLINE,
            ),
            partial(services.auto_release, milestone_id=mid, now=DEADLINE),
        )

        assert not [a for a in answers if isinstance(a, DomainError)], answers
        [winner] = took_effect(answers)
        with pg.session() as session:
            m = milestone_row(session, contract_id)
            releases = [e for e in entries(session, contract_id) if e[0] == "release"]
            extended = history(session, contract_id, "review_extended")
            if winner is answers[0]:
                winners.add("more time")
                assert m.status == MilestoneStatus.SUBMITTED
                assert m.auto_release_at == DEADLINE + timedelta(days=7)
                assert (releases, len(extended)) == ([], 1)
            else:
                winners.add("release")
                assert m.status == MilestoneStatus.RELEASED and m.released_automatically
                assert [e[2] for e in releases] == [150_000] and extended == []
            clean(session)
            # A sweep afterwards (the retry of a busy timer) releases nothing more.
            services.release_due(session, now=DEADLINE)
            assert len([e for e in entries(session, contract_id) if e[0] == "release"]) == len(
                releases
            )
    assert winners


@pytest.mark.postgres
def test_a_partial_release_racing_the_end_of_the_contract_moves_the_money_once(
    pg: Database,
) -> None:
    for round_no in range(ROUNDS):
        agency = round_no % 2 == 1
        with pg.session() as session:
            contract_id = funded_contract(session, agency=agency)
        ender = CLIENT if round_no % 4 < 2 else provider_of(agency)

        answers: list[Answer] = race(
            pg,
            partial(
                services.release_part,
                contract_id=contract_id,
                actor_id=CLIENT,
                number=1,
                amount="600",
                now=later(2),
            ),
            partial(services.end_contract, contract_id=contract_id, actor_id=ender, now=later(2)),
        )

        with pg.session() as session:
            moved = entries(session, contract_id)
            parts = [e for e in moved if e[0] == "release" and ":part:" in e[1]]
            released = sum(e[2] for e in moved if e[0] == "release")
            refunded = sum(e[2] for e in moved if e[0] == "refund")
            held = balance(session, contract_id)
            assert released + refunded + held == 150_000
            if isinstance(answers[0], DomainError):
                assert parts == []
            else:
                assert [e[2] for e in parts] == [60_000]
            clean(session)


@pytest.mark.postgres
def test_a_partial_release_racing_the_automatic_release_pays_the_milestone_once(
    pg: Database,
) -> None:
    for round_no in range(ROUNDS):
        with pg.session() as session:
            contract_id = submitted_contract(session, agency=round_no % 2 == 1)
            mid = milestone_row(session, contract_id).id

        answers = race(
            pg,
            partial(
                services.release_part,
                contract_id=contract_id,
                actor_id=CLIENT,
                number=1,
                amount="400",
                now=DEADLINE,
            ),
            partial(services.auto_release, milestone_id=mid, now=DEADLINE),
        )

        with pg.session() as session:
            services.release_due(session, now=DEADLINE)  # the retry of a busy timer
            m = milestone_row(session, contract_id)
            releases = [e for e in entries(session, contract_id) if e[0] == "release"]
            assert m.status == MilestoneStatus.RELEASED
            assert sum(e[2] for e in releases) == 150_000
            assert [e[1] for e in releases].count(f"release:{mid}") == 1
            if isinstance(answers[0], DomainError):
                assert isinstance(answers[0], InvalidTransition)
                assert len(releases) == 1
            else:
                assert [e[2] for e in releases] == [40_000, 110_000]
            assert balance(session, contract_id) == 0
            clean(session)
