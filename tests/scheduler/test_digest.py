"""The weekday-morning digest: 09:00 in each person's own time zone, Monday to Friday,
once per person and day — after downtime only today's, and exactly once with several
sweepers at the same instant (domain.digest, scheduler.jobs.sweep_digests)."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from domain import digest, notify
from domain.db import read_transaction, write_transaction
from domain.model import Digest, IntentKind, Notify, OutboxMessage, Party, Role
from scheduler.jobs import sweep_digests
from tests.conftest import Database
from tests.factories import CLIENT, FREELANCER, NOW, TEAM, funded_contract, submitted_contract
from tests.scheduler.digest_workers import digests_until_done
from tests.scheduler.support import clone_contract

# NOW is Monday 2 November 2026, 10:00 UTC: 19:00 in Tokyo, 02:00 in Los Angeles (PST).
ZONES = {CLIENT: "Asia/Tokyo", FREELANCER: "America/Los_Angeles"}
TOKYO_NINE_TUESDAY = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)
LA_NINE_MONDAY = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)


def seed(session: Session) -> None:
    """The client (Tokyo) has submitted work to review; the freelancer (Los Angeles) a
    funded milestone to deliver. Both chose the digest at NOW."""
    submitted_contract(session)
    funded_contract(session)
    for user in (CLIENT, FREELANCER):
        notify.choose(session, user_id=user, team_id=TEAM, choice=Notify.DIGEST, now=NOW)


def sweep(db: Database, at: datetime) -> list[str | None]:
    """One sweep at `at`: the recipients of the digests it queued."""
    ids = digest.send_due(db.sessions, now=at, time_zone_of=ZONES.get)
    with db.session() as session, read_transaction(session):
        rows = list(
            session.scalars(
                select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
            )
        )
    assert all(row.kind == IntentKind.DIGEST and row.team_id == TEAM for row in rows)
    return [row.user_id for row in rows]


def digests(db: Database) -> list[tuple[str, date, int]]:
    with db.session() as session, read_transaction(session):
        return [
            (row.user_id, row.day, row.items)
            for row in session.scalars(select(Digest).order_by(Digest.day, Digest.user_id))
        ]


def test_each_person_gets_the_digest_at_nine_in_their_own_time_zone(db: Database) -> None:
    with db.session() as session:
        seed(session)

    assert sweep(db, NOW) == []  # 19:00 in Tokyo, 02:00 in Los Angeles
    assert sweep(db, LA_NINE_MONDAY - timedelta(minutes=1)) == []
    assert sweep(db, LA_NINE_MONDAY) == [FREELANCER]
    assert sweep(db, LA_NINE_MONDAY + timedelta(minutes=30)) == []
    assert sweep(db, TOKYO_NINE_TUESDAY - timedelta(minutes=1)) == []
    assert sweep(db, TOKYO_NINE_TUESDAY) == [CLIENT]
    assert sweep(db, TOKYO_NINE_TUESDAY + timedelta(hours=1)) == []
    assert sweep(db, LA_NINE_MONDAY + timedelta(days=1)) == [FREELANCER]

    assert digests(db) == [
        (FREELANCER, date(2026, 11, 2), 1),
        (CLIENT, date(2026, 11, 3), 1),
        (FREELANCER, date(2026, 11, 3), 1),
    ]


def test_the_weekend_has_no_digest_and_each_weekday_has_exactly_one(db: Database) -> None:
    with db.session() as session:
        seed(session)
    sent: list[tuple[str | None, datetime]] = []
    at = NOW
    while at <= datetime(2026, 11, 10, 12, 0, tzinfo=UTC):  # hourly, to Tuesday a week on
        sent += [(user, at) for user in sweep(db, at)]
        at += timedelta(hours=1)

    weekdays = [date(2026, 11, day) for day in (2, 3, 4, 5, 6, 9, 10)]
    assert (
        sorted((user or "", day) for user, day, _ in digests(db))
        == sorted(
            [(CLIENT, day) for day in weekdays[1:]]  # chose it after Monday's 09:00 in Tokyo
            + [(FREELANCER, day) for day in weekdays[:-1]]  # Tuesday 09:00 in LA is after the end
        )
    )
    assert len(sent) == 12  # one message each
    for user, when in sent:
        local = when.astimezone(digest.zone_of(ZONES[user or ""]))
        assert local.weekday() < 5 and (local.hour, local.minute) == (9, 0)


def test_after_downtime_only_todays_digest_is_sent_late(db: Database) -> None:
    with db.session() as session:
        seed(session)
    # Down since Monday morning. Wednesday 14:00 in Los Angeles, Thursday 07:00 in Tokyo:
    wednesday_afternoon_la = datetime(2026, 11, 4, 22, 0, tzinfo=UTC)

    assert sweep(db, wednesday_afternoon_la) == [FREELANCER]  # Wednesday's, late
    assert sweep(db, wednesday_afternoon_la + timedelta(hours=1)) == []
    assert sweep(db, datetime(2026, 11, 5, 0, 0, tzinfo=UTC)) == [CLIENT]  # Thursday's
    assert [(user, day) for user, day, _ in digests(db)] == [
        (FREELANCER, date(2026, 11, 4)),  # not Monday's nor Tuesday's
        (CLIENT, date(2026, 11, 5)),  # not Tuesday's nor Wednesday's
    ]


def test_someone_who_chooses_the_digest_after_nine_gets_the_first_one_next_weekday(
    db: Database,
) -> None:
    with db.session() as session:
        seed(session)  # chosen at 19:00 on Monday in Tokyo
    assert sweep(db, NOW + timedelta(hours=1)) == []
    assert CLIENT not in {user for user, _, _ in digests(db)}
    assert CLIENT in sweep(db, TOKYO_NINE_TUESDAY)
    assert [day for user, day, _ in digests(db) if user == CLIENT] == [date(2026, 11, 3)]


def test_nothing_waiting_means_no_message_that_day(db: Database) -> None:
    with db.session() as session:
        notify.choose(session, user_id="UNOBODY1", team_id=TEAM, choice=Notify.DIGEST, now=NOW)
    assert sweep(db, NOW + timedelta(days=1)) == []
    assert digests(db) == [("UNOBODY1", date(2026, 11, 3), 0)]
    assert sweep(db, NOW + timedelta(days=1, hours=2)) == []


def test_changing_away_from_the_digest_stops_it(db: Database) -> None:
    with db.session() as session:
        seed(session)
        notify.choose(session, user_id=CLIENT, team_id=TEAM, choice=Notify.BOTH, now=NOW)
    assert sweep(db, TOKYO_NINE_TUESDAY) == [FREELANCER]  # his Monday's (17:00 UTC)
    assert CLIENT not in {user for user, _, _ in digests(db)}


def test_the_scheduler_job_queues_and_delivers_the_digests(db: Database) -> None:
    with db.session() as session:
        seed(session)
    delivered: list[int] = []
    count = sweep_digests(db.sessions, LA_NINE_MONDAY, delivered.extend, time_zone_of=ZONES.get)
    assert count == 1 and len(delivered) == 1


# --- several sweepers at once (PostgreSQL) ----------------------------------------------

PEOPLE = 120
TUESDAY_NOON = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)  # 09:00 UTC has passed


def seed_many(database: Database) -> list[str]:
    """PEOPLE clients in UTC, each with submitted work to review, who chose the digest."""
    with database.session() as session:
        template = submitted_contract(session)
        contracts = [template, *clone_contract(session, template, PEOPLE - 1)]
        people = [f"UDIGEST{i:03d}" for i in range(PEOPLE)]
        with write_transaction(session):
            for contract_id, person in zip(contracts, people, strict=True):
                session.execute(
                    update(Party)
                    .where(Party.contract_id == contract_id, Party.role == Role.CLIENT)
                    .values(user_id=person)
                )
        for person in people:
            notify.choose(session, user_id=person, team_id=TEAM, choice=Notify.DIGEST, now=NOW)
    return people


def test_two_processes_and_two_threads_send_each_digest_exactly_once_on_postgresql(
    pg: Database,
) -> None:
    people = seed_many(pg)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    results = context.Queue()
    processes = [
        context.Process(
            target=digests_until_done, args=(pg.url, TUESDAY_NOON, start, results), daemon=True
        )
        for _ in range(2)
    ]
    counted: list[int] = []
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            start.wait(timeout=60)
            counted.append(len(_until_done(pg)))
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    threads = [threading.Thread(target=in_thread) for _ in range(2)]
    for process in processes:
        process.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    for _ in processes:
        pid, queued = results.get(timeout=90)
        assert isinstance(queued, int), f"sweeper process {pid} failed: {queued}"
        counted.append(queued)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert errors == []
    assert sum(counted) == PEOPLE, counted
    with pg.session() as session, read_transaction(session):
        per_person = dict(
            session.execute(
                select(OutboxMessage.user_id, func.count())
                .where(OutboxMessage.kind == IntentKind.DIGEST)
                .group_by(OutboxMessage.user_id)
            ).all()
        )
        rows = session.scalar(select(func.count()).select_from(Digest))
    assert per_person == dict.fromkeys(people, 1)
    assert rows == PEOPLE


def _until_done(database: Database) -> list[int]:
    queued: list[int] = []
    while True:
        queued += digest.send_due(database.sessions, now=TUESDAY_NOON, time_zone_of=lambda _: None)
        with database.sessions() as session:
            if not digest.due(session, now=TUESDAY_NOON):
                return queued
