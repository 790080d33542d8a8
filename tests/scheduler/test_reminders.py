"""Reminders through the real services: when each nudge is scheduled, sent and stopped.

`NOW` is Monday 2 November 2026, 10:00 UTC. Recipients are in UTC unless a test gives
them a zone. Every sweep runs with a fixed `now`, and again where a repeat matters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from domain import services
from domain.model import ReminderKind, ReminderState
from domain.policy import Policy
from domain.services import MilestoneDeletion, MilestoneEdit
from tests.conftest import Database
from tests.factories import (
    CLIENT,
    FREELANCER,
    MANAGER,
    MANAGER_2,
    NOW,
    active_contract,
    funded_contract,
    later,
    submitted_contract,
)
from tests.scheduler.support import (
    milestone_id,
    pending,
    reminder_intents,
    reminder_rows,
    send_due,
    sent,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def propose_deletion(session: Session, contract_id: int, *, now: datetime = NOW) -> int:
    """The freelancer asks to delete milestone 2; returns the request id."""
    outcome = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneDeletion(2)],
        now=now,
    )
    assert outcome.request_id is not None
    return outcome.request_id


# --- change requests ------------------------------------------------------------------


def test_proposing_a_request_schedules_the_clients_nudge_a_day_later(db: Database) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
        request_id = propose_deletion(session, contract_id)

        [row] = reminder_rows(session)
        assert row.kind == ReminderKind.REQUEST
        assert row.subject_id == request_id
        assert row.recipient_id == CLIENT
        assert row.due_at == NOW + 24 * HOUR
        assert row.state == ReminderState.PENDING

        assert send_due(db.sessions, NOW + 24 * HOUR - timedelta(seconds=1)) == []
        assert reminder_intents(session) == []


def test_a_due_request_nudge_is_queued_for_the_client_once(db: Database) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
        request_id = propose_deletion(session, contract_id)

        queued = send_due(db.sessions, NOW + 24 * HOUR)
        assert send_due(db.sessions, NOW + 24 * HOUR) == []  # the same tick again

        [intent] = reminder_intents(session)
        assert queued == [intent.id]
        assert intent.user_id == CLIENT
        assert intent.contract_id == contract_id
        [fired] = sent(session, ReminderKind.REQUEST)
        assert (fired.subject_id, fired.slot) == (request_id, 1)


def test_after_a_request_nudge_fires_the_next_comes_48_hours_later(db: Database) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
        propose_deletion(session, contract_id)

        send_due(db.sessions, NOW + 24 * HOUR)
        [following] = pending(session)
        assert (following.slot, following.due_at) == (2, NOW + 72 * HOUR)

        assert send_due(db.sessions, NOW + 71 * HOUR) == []
        assert len(send_due(db.sessions, NOW + 72 * HOUR)) == 1
        assert send_due(db.sessions, NOW + 72 * HOUR) == []
        [third] = pending(session)
        assert (third.slot, third.due_at) == (3, NOW + 120 * HOUR)
        assert len(reminder_intents(session)) == 2


def test_after_a_long_downtime_overtaken_request_nudges_collapse_into_one(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
        propose_deletion(session, contract_id)

        # Down for ten days: slots at 24 h, 72 h, 120 h, 168 h and 216 h all passed.
        back = NOW + 10 * DAY
        assert len(send_due(db.sessions, back)) == 1
        assert send_due(db.sessions, back) == []
        assert len(reminder_intents(session)) == 1
        [following] = pending(session)
        # The rhythm continues from the original schedule: 24 h + 5 × 48 h.
        assert following.due_at == NOW + 264 * HOUR
        assert following.due_at > back


def _accept(session: Session, request_id: int) -> None:
    services.accept_request(session, actor_id=CLIENT, request_id=request_id, now=later(hours=1))


def _decline(session: Session, request_id: int) -> None:
    services.decline_request(session, actor_id=CLIENT, request_id=request_id, now=later(hours=1))


def _withdraw(session: Session, request_id: int) -> None:
    services.withdraw_request(
        session, actor_id=FREELANCER, request_id=request_id, now=later(hours=1)
    )


ANSWERS: list[tuple[str, Callable[[Session, int], None]]] = [
    ("accept", _accept),
    ("decline", _decline),
    ("withdraw", _withdraw),
]


@pytest.mark.parametrize(("how", "answer"), ANSWERS, ids=[a for a, _ in ANSWERS])
def test_answering_a_request_stops_its_nudges(
    db: Database, how: str, answer: Callable[[Session, int], None]
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
        request_id = propose_deletion(session, contract_id)

        answer(session, request_id)

        assert pending(session) == []
        assert [r.state for r in reminder_rows(session)] == [ReminderState.CANCELLED]
        assert send_due(db.sessions, NOW + 24 * HOUR) == []
        assert send_due(db.sessions, NOW + 30 * DAY) == []
        assert reminder_intents(session) == []


def test_a_request_cancelled_because_it_can_no_longer_apply_stops_its_nudges(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
        # "Delete milestone 1" can't apply once milestone 1 is funded.
        outcome = services.propose_changes(
            session,
            contract_id=contract_id,
            actor_id=FREELANCER,
            changes=[MilestoneDeletion(1)],
            now=NOW,
        )
        services.fund_milestone(
            session, contract_id=contract_id, actor_id=CLIENT, now=later(hours=1)
        )

        [row] = reminder_rows(session, kind=ReminderKind.REQUEST)
        assert row.subject_id == outcome.request_id
        assert row.state == ReminderState.CANCELLED
        send_due(db.sessions, NOW + 24 * HOUR)
        send_due(db.sessions, NOW + 30 * DAY)
        assert sent(session, ReminderKind.REQUEST) == []


def test_a_request_answered_between_sweeps_is_not_nudged_again(db: Database) -> None:
    with db.session() as session:
        contract_id = active_contract(session)
        request_id = propose_deletion(session, contract_id)
        send_due(db.sessions, NOW + 24 * HOUR)
        services.decline_request(
            session, actor_id=CLIENT, request_id=request_id, now=NOW + 30 * HOUR
        )

        assert send_due(db.sessions, NOW + 72 * HOUR) == []
        assert len(reminder_intents(session)) == 1
        assert pending(session) == []


def test_a_request_nudge_due_on_a_weekend_waits_for_monday_morning_in_the_clients_zone(
    db: Database,
) -> None:
    berlin = {CLIENT: "Europe/Berlin"}
    friday_evening = datetime(2026, 11, 6, 20, 0, tzinfo=UTC)
    with db.session() as session:
        contract_id = active_contract(session)
        propose_deletion(session, contract_id, now=friday_evening)

        saturday = friday_evening + 24 * HOUR
        assert send_due(db.sessions, saturday, zones=berlin) == []
        [waiting] = pending(session)
        monday_9_berlin = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)  # CET = UTC+1
        assert waiting.not_before == monday_9_berlin

        assert send_due(db.sessions, monday_9_berlin - timedelta(minutes=1), zones=berlin) == []
        assert len(send_due(db.sessions, monday_9_berlin, zones=berlin)) == 1
        assert send_due(db.sessions, monday_9_berlin, zones=berlin) == []
        # The rhythm stays on the original schedule: due Saturday 20:00 + 48 h.
        [following] = pending(session)
        assert following.due_at == saturday + 48 * HOUR


def test_a_nudge_missed_while_the_bot_was_down_over_a_weekend_waits_for_working_hours(
    db: Database,
) -> None:
    thursday = datetime(2026, 11, 5, 16, 0, tzinfo=UTC)
    with db.session() as session:
        contract_id = active_contract(session)
        propose_deletion(session, contract_id, now=thursday)  # due Friday 16:00

        saturday = datetime(2026, 11, 7, 12, 0, tzinfo=UTC)  # the bot is back
        assert send_due(db.sessions, saturday) == []
        [waiting] = pending(session)
        monday_9 = datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
        assert waiting.not_before == monday_9
        assert len(send_due(db.sessions, monday_9)) == 1
        assert send_due(db.sessions, monday_9) == []


# --- review before automatic release ----------------------------------------------------


def test_submitted_work_schedules_reminders_seven_days_and_one_day_before_release(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        release_at = NOW + 14 * DAY

        rows = pending(session, ReminderKind.REVIEW)
        assert [(r.due_at, r.deadline_at) for r in rows] == [
            (release_at - 7 * DAY, release_at),
            (release_at - 1 * DAY, release_at),
        ]
        assert {r.subject_id for r in rows} == {milestone_id(session, contract_id)}
        assert {r.recipient_id for r in rows} == {CLIENT}


def test_a_review_period_shorter_than_seven_days_skips_the_seven_day_reminder(
    db: Database,
) -> None:
    short = Policy(auto_release_period=timedelta(days=5))
    with db.session() as session:
        contract_id = funded_contract(session)
        services.submit_work(
            session, contract_id=contract_id, actor_id=FREELANCER, now=NOW, policy=short
        )

        [row] = pending(session, ReminderKind.REVIEW)
        assert (row.due_at, row.deadline_at) == (NOW + 4 * DAY, NOW + 5 * DAY)


def test_review_reminders_are_sent_when_due_each_once(db: Database) -> None:
    with db.session() as session:
        submitted_contract(session)
        seven_before = NOW + 7 * DAY  # Monday 9 November, 10:00

        assert len(send_due(db.sessions, seven_before)) == 1
        assert send_due(db.sessions, seven_before) == []
        assert [r.slot for r in sent(session, ReminderKind.REVIEW)] == [1]
        [intent] = reminder_intents(session)
        assert intent.user_id == CLIENT


def test_a_review_reminder_falling_on_a_weekend_is_never_shifted_past_the_release(
    db: Database,
) -> None:
    with db.session() as session:
        submitted_contract(session)
        release_at = NOW + 14 * DAY  # Monday 16 November, 10:00 UTC
        day_before = release_at - DAY  # a Sunday
        send_due(db.sessions, NOW + 7 * DAY)

        assert send_due(db.sessions, day_before) == []
        [waiting] = pending(session, ReminderKind.REVIEW)
        monday_9 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
        assert waiting.not_before == monday_9  # an hour before the release, in hours
        assert len(send_due(db.sessions, monday_9)) == 1


def test_a_review_reminder_that_working_hours_would_push_past_the_release_comes_earlier(
    db: Database,
) -> None:
    los_angeles = {CLIENT: "America/Los_Angeles"}  # UTC-8 in November
    with db.session() as session:
        submitted_contract(session)
        release_at = NOW + 14 * DAY  # Monday 16 November, 02:00 in Los Angeles
        # The 7-day reminder (Monday 9 November, 02:00 local) waits for 09:00 local.
        assert send_due(db.sessions, NOW + 7 * DAY, zones=los_angeles) == []
        assert len(send_due(db.sessions, NOW + 7 * DAY + 7 * HOUR, zones=los_angeles)) == 1

        # The 1-day reminder is due Sunday 02:00 local; Monday 09:00 local is after the
        # release, so it comes an hour before the release instead.
        assert send_due(db.sessions, release_at - DAY, zones=los_angeles) == []
        [waiting] = pending(session, ReminderKind.REVIEW)
        assert waiting.not_before == release_at - HOUR
        assert len(send_due(db.sessions, release_at - HOUR, zones=los_angeles)) == 1
        assert len(reminder_intents(session)) == 2


@pytest.mark.parametrize("how", ["approve", "request changes"])
def test_approving_or_requesting_changes_stops_review_reminders(db: Database, how: str) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        if how == "approve":
            services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))
        else:
            services.request_changes(
                session, contract_id=contract_id, actor_id=CLIENT, note="fix", now=later(1)
            )

        assert pending(session, ReminderKind.REVIEW) == []
        send_due(db.sessions, NOW + 7 * DAY)  # (a fund nudge may be due after approval)
        send_due(db.sessions, NOW + 13 * DAY)
        assert sent(session, ReminderKind.REVIEW) == []


def test_a_resubmission_schedules_fresh_review_reminders_and_the_old_ones_stay_silent(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        services.request_changes(
            session, contract_id=contract_id, actor_id=CLIENT, note="fix", now=later(days=1)
        )
        resubmitted = NOW + 2 * DAY
        services.submit_work(session, contract_id=contract_id, actor_id=FREELANCER, now=resubmitted)

        rows = pending(session, ReminderKind.REVIEW)
        assert [r.due_at for r in rows] == [resubmitted + 7 * DAY, resubmitted + 13 * DAY]
        assert send_due(db.sessions, NOW + 7 * DAY) == []  # the first submission's slot
        assert len(send_due(db.sessions, resubmitted + 7 * DAY)) == 1
        assert len(reminder_intents(session)) == 1


def test_after_downtime_with_both_review_slots_overdue_only_the_latest_is_sent(
    db: Database,
) -> None:
    fifteen = Policy(auto_release_period=timedelta(days=15))  # release Tuesday 17 November
    with db.session() as session:
        contract_id = funded_contract(session)
        services.submit_work(
            session, contract_id=contract_id, actor_id=FREELANCER, now=NOW, policy=fifteen
        )

        back = NOW + 14 * DAY + 2 * HOUR  # Monday 16 November, 12:00: both slots passed
        assert len(send_due(db.sessions, back, policy=fifteen)) == 1
        assert send_due(db.sessions, back, policy=fifteen) == []

        states = {r.slot: r.state for r in reminder_rows(session, kind=ReminderKind.REVIEW)}
        assert states == {1: ReminderState.SKIPPED, 2: ReminderState.SENT}
        assert len(reminder_intents(session)) == 1


def test_a_review_reminder_is_dropped_once_the_release_has_passed(db: Database) -> None:
    with db.session() as session:
        submitted_contract(session)
        assert send_due(db.sessions, NOW + 20 * DAY) == []
        assert pending(session, ReminderKind.REVIEW) == []
        assert reminder_intents(session) == []


# --- funding the next milestone ---------------------------------------------------------


def test_a_release_with_a_next_milestone_waiting_schedules_a_fund_nudge_48_hours_later(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        released = later(days=1)
        services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=released)

        [row] = pending(session, ReminderKind.FUND)
        assert row.subject_id == milestone_id(session, contract_id, 2)
        assert (row.recipient_id, row.due_at) == (CLIENT, released + 48 * HOUR)

        assert send_due(db.sessions, released + 47 * HOUR) == []
        assert len(send_due(db.sessions, released + 48 * HOUR)) == 1
        assert send_due(db.sessions, released + 48 * HOUR) == []
        assert pending(session, ReminderKind.FUND) == []


def test_funding_the_next_milestone_stops_the_fund_nudge(db: Database) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))
        services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=later(2))

        assert [r.state for r in reminder_rows(session, kind=ReminderKind.FUND)] == [
            ReminderState.CANCELLED
        ]
        assert send_due(db.sessions, later(days=3)) == []
        assert reminder_intents(session) == []


def test_releasing_the_last_milestone_schedules_no_fund_nudge(db: Database) -> None:
    with db.session() as session:
        contract_id = active_contract(session, amounts=("1500",))
        services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
        services.submit_work(session, contract_id=contract_id, actor_id=FREELANCER, now=NOW)
        services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))

        assert pending(session, ReminderKind.FUND) == []


# --- overdue work -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agency", "providers"),
    [(False, [FREELANCER]), (True, [MANAGER, MANAGER_2])],
    ids=["freelancer", "agency"],
)
def test_a_funded_milestone_past_its_due_date_nudges_both_sides_once(
    db: Database, agency: bool, providers: list[str]
) -> None:
    with db.session() as session:
        funded_contract(session, agency=agency)
        # Milestone 1 is due 1 December; it is overdue from 2 December, 00:00 UTC.
        overdue = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
        rows = pending(session, ReminderKind.OVERDUE)
        assert sorted(r.recipient_id for r in rows) == sorted([CLIENT, *providers])
        assert {r.due_at for r in rows} == {overdue}

        assert send_due(db.sessions, overdue - timedelta(seconds=1)) == []
        assert send_due(db.sessions, overdue) == []  # midnight: outside working hours
        morning = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
        assert len(send_due(db.sessions, morning)) == 1 + len(providers)
        assert send_due(db.sessions, morning) == []
        assert send_due(db.sessions, morning + 30 * DAY) == []
        assert sorted(i.user_id or "" for i in reminder_intents(session)) == sorted(
            [CLIENT, *providers]
        )


def test_overdue_nudges_follow_each_recipients_working_hours(db: Database) -> None:
    zones = {CLIENT: "Europe/Berlin", FREELANCER: "America/New_York"}
    with db.session() as session:
        funded_contract(session)
        overdue = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
        send_due(db.sessions, overdue, zones=zones)

        nine_in_berlin = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
        nine_in_new_york = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
        assert len(send_due(db.sessions, nine_in_berlin, zones=zones)) == 1
        assert [i.user_id for i in reminder_intents(session)] == [CLIENT]
        assert send_due(db.sessions, nine_in_new_york - timedelta(minutes=1), zones=zones) == []
        assert len(send_due(db.sessions, nine_in_new_york, zones=zones)) == 1
        assert [i.user_id for i in reminder_intents(session)] == [CLIENT, FREELANCER]


def test_work_submitted_before_the_due_date_passes_gets_no_overdue_nudge(db: Database) -> None:
    with db.session() as session:
        submitted_contract(session)
        send_due(db.sessions, datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        assert sent(session, ReminderKind.OVERDUE) == []


def test_moving_a_funded_milestones_due_date_later_moves_its_overdue_nudge(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = funded_contract(session)
        outcome = services.propose_changes(
            session,
            contract_id=contract_id,
            actor_id=FREELANCER,
            changes=[MilestoneEdit(1, due_date=date(2026, 12, 15))],
            now=later(1),
        )
        services.accept_request(
            session, actor_id=CLIENT, request_id=outcome.request_id, now=later(2)
        )

        # The old due date passes: the milestone is not overdue, nobody is nudged.
        assert send_due(db.sessions, datetime(2026, 12, 2, 9, 0, tzinfo=UTC)) == []
        assert sent(session, ReminderKind.OVERDUE) == []
        # The new one passes: both sides are nudged.
        assert len(send_due(db.sessions, datetime(2026, 12, 16, 9, 0, tzinfo=UTC))) == 2


# --- ending, and exactly once -------------------------------------------------------------


def test_ending_the_contract_cancels_every_reminder(db: Database) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        propose_deletion(session, contract_id)
        assert {r.kind for r in pending(session)} == {
            ReminderKind.REQUEST,
            ReminderKind.REVIEW,
            ReminderKind.OVERDUE,
        }

        services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=later(1))

        assert pending(session) == []
        for when in (NOW + DAY, NOW + 7 * DAY, NOW + 13 * DAY, NOW + 60 * DAY):
            assert send_due(db.sessions, when) == []
        assert reminder_intents(session) == []


def test_reminders_of_another_contract_are_untouched_when_one_ends(db: Database) -> None:
    with db.session() as session:
        ended = submitted_contract(session)
        other = submitted_contract(session)
        services.end_contract(session, contract_id=ended, actor_id=FREELANCER, now=later(1))

        rows = pending(session, ReminderKind.REVIEW)
        assert {r.subject_id for r in rows} == {milestone_id(session, other)}
        assert len(send_due(db.sessions, NOW + 7 * DAY)) == 1


def test_each_reminder_is_sent_at_most_once_when_sweeps_run_in_parallel_threads(
    db: Database,
) -> None:
    with db.session() as session:
        for _ in range(6):
            propose_deletion(session, active_contract(session))
    due = NOW + 24 * HOUR
    barrier = threading.Barrier(4)
    queued: list[list[int]] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            barrier.wait()
            queued.append(send_due(db.sessions, due))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    with db.session() as session:
        intents = reminder_intents(session)
        assert len(intents) == 6
        assert sorted(i for ids in queued for i in ids) == sorted(i.id for i in intents)
        assert len(sent(session, ReminderKind.REQUEST)) == 6
        # A sweep that skipped a contract another one held leaves nothing behind.
        assert send_due(db.sessions, due) == []
