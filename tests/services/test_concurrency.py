"""Races: double clicks, clicks against timers, several sweeps at once.

On PostgreSQL the services lock the contract row (`SELECT … FOR UPDATE`), so two
transactions on one contract queue up and the second re-reads what the first
committed. Each race starts its threads together on a `threading.Barrier`, each with
its own session and connection, and is run `ROUNDS` times. Whatever the order,
exactly one click takes effect, the history says which, and money moves once; the
ledger's unique key refuses a second release even to code that bypasses the services.

On SQLite writers queue on `BEGIN IMMEDIATE` and the busy timeout: a crowd of clicks
never surfaces "database is locked", every call lands or is refused cleanly.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain import ledger, queries, services
from domain.db import make_engine, make_session_factory
from domain.errors import (
    DomainError,
    InvalidTransition,
    NotAllowed,
    OutOfOrder,
    RequestNotPending,
)
from domain.model import (
    SYSTEM_ACTOR,
    ChangeRequest,
    Event,
    LedgerEntry,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    RequestStatus,
)
from domain.services import MilestoneEdit, Outcome
from tests.conftest import Database
from tests.factories import (
    CLIENT,
    active_contract,
    funded_contract,
    later,
    provider_of,
    submitted_contract,
)

ROUNDS = 20
CROWD = 20

Call = Callable[[Session], Outcome]
Answer = Outcome | DomainError


# --------------------------------------------------------------------------------------
# Helpers


def race(database: Database, *calls: Call) -> list[Answer]:
    """Run the calls at the same moment, each in its own thread, session and connection.

    A refusal is an answer; anything else raised (a lock error, an integrity error)
    fails the test.
    """
    barrier = threading.Barrier(len(calls))

    def click(call: Call) -> Answer:
        with database.session() as session:
            barrier.wait(timeout=30)
            try:
                return call(session)
            except DomainError as refusal:
                return refusal

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(click, call) for call in calls]
        return [future.result(timeout=120) for future in futures]


def took_effect(answers: list[Answer]) -> list[Outcome]:
    return [a for a in answers if isinstance(a, Outcome) and not a.already_done]


def the_rest(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if not (isinstance(a, Outcome) and not a.already_done)]


def events(session: Session, contract_id: int, kind: str) -> list[Event]:
    return [e for e in queries.history(session, contract_id) if e.kind == kind]


def entries(session: Session, contract_id: int, kind: LedgerKind) -> list[LedgerEntry]:
    return [e for e in ledger.entries(session, contract_id) if e.kind == kind]


def milestone(session: Session, contract_id: int, number: int) -> Milestone:
    found = session.scalar(
        select(Milestone)
        .where(Milestone.contract_id == contract_id, Milestone.number == number)
        .execution_options(populate_existing=True)
    )
    assert found is not None
    return found


def propose(session: Session, contract_id: int, edit: MilestoneEdit, *, agency: bool) -> int:
    outcome = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=provider_of(agency),
        changes=[edit],
        message="Scope grew",
        now=later(hours=1),
    )
    assert outcome.request_id is not None
    return outcome.request_id


def request_status(session: Session, request_id: int) -> RequestStatus:
    status = session.scalar(select(ChangeRequest.status).where(ChangeRequest.id == request_id))
    assert status is not None
    return status


# --------------------------------------------------------------------------------------
# PostgreSQL: real row locks


@pytest.mark.postgres
def test_two_accepts_of_one_request_take_effect_once(pg: Database) -> None:
    for round_no in range(ROUNDS):
        agency = round_no % 2 == 1
        with pg.session() as session:
            contract_id = funded_contract(session, agency=agency)
            # Milestone 1 is funded with 1,500.00: the increase is topped up on acceptance.
            request_id = propose(
                session, contract_id, MilestoneEdit(1, amount="2000"), agency=agency
            )
            number = session.scalar(
                select(ChangeRequest.number).where(ChangeRequest.id == request_id)
            )

        by_id = partial(
            services.accept_request, actor_id=CLIENT, now=later(2), request_id=request_id
        )
        by_number = partial(
            services.accept_request,
            actor_id=CLIENT,
            now=later(2),
            contract_id=contract_id,
            number=number,
        )

        answers = race(pg, by_id, by_number if round_no % 3 else by_id)

        assert len(took_effect(answers)) == 1, answers
        for other in the_rest(answers):
            assert isinstance(other, RequestNotPending) or (
                isinstance(other, Outcome) and other.already_done
            ), other
        with pg.session() as session:
            assert request_status(session, request_id) == RequestStatus.ACCEPTED
            assert len(events(session, contract_id, "request_accepted")) == 1
            top_ups = entries(session, contract_id, LedgerKind.TOP_UP)
            assert [e.amount_minor for e in top_ups] == [50_000]
            assert len(events(session, contract_id, "escrow_topped_up")) == 1
            assert milestone(session, contract_id, 1).amount_minor == 200_000
            assert ledger.escrow_of(session, contract_id).balance_minor == 200_000


@pytest.mark.postgres
def test_accept_racing_withdraw_has_exactly_one_winner(pg: Database) -> None:
    winners: set[str] = set()
    for round_no in range(ROUNDS):
        agency = round_no % 2 == 1
        with pg.session() as session:
            contract_id = active_contract(session, agency=agency)
            request_id = propose(
                session, contract_id, MilestoneEdit(2, title="Build, with a CMS"), agency=agency
            )

        answers = race(
            pg,
            partial(services.accept_request, actor_id=CLIENT, now=later(2), request_id=request_id),
            partial(
                services.withdraw_request,
                actor_id=provider_of(agency),
                now=later(2),
                request_id=request_id,
            ),
        )

        done = took_effect(answers)
        assert len(done) == 1, answers
        [loser] = the_rest(answers)
        assert isinstance(loser, RequestNotPending), loser
        with pg.session() as session:
            status = request_status(session, request_id)
            accepted = events(session, contract_id, "request_accepted")
            withdrawn = events(session, contract_id, "request_withdrawn")
            title = milestone(session, contract_id, 2).title
        if done[0] is answers[0]:
            winners.add("accept")
            assert status == RequestStatus.ACCEPTED
            assert (len(accepted), len(withdrawn)) == (1, 0)
            assert title == "Build, with a CMS"
        else:
            winners.add("withdraw")
            assert status == RequestStatus.WITHDRAWN
            assert (len(accepted), len(withdrawn)) == (0, 1)
            assert title == "Milestone 2"
    assert winners  # which side wins varies from run to run; both outcomes are checked


@pytest.mark.postgres
def test_two_approvals_release_a_milestone_once(pg: Database) -> None:
    for round_no in range(ROUNDS):
        with pg.session() as session:
            contract_id = submitted_contract(session, agency=round_no % 2 == 1)
            milestone_id = milestone(session, contract_id, 1).id

        from_a_command = partial(
            services.approve_work, contract_id=contract_id, actor_id=CLIENT, now=later(3)
        )
        from_the_card = partial(from_a_command, milestone_id=milestone_id)

        answers = race(pg, from_the_card, from_the_card if round_no % 2 else from_a_command)

        assert len(took_effect(answers)) == 1, answers
        for other in the_rest(answers):
            assert isinstance(other, InvalidTransition) or (
                isinstance(other, Outcome) and other.already_done
            ), other
        with pg.session() as session:
            releases = entries(session, contract_id, LedgerKind.RELEASE)
            assert [(e.amount_minor, e.actor) for e in releases] == [(150_000, CLIENT)]
            [released] = events(session, contract_id, "milestone_released")
            assert released.data["automatic"] is False
            assert milestone(session, contract_id, 1).released_automatically is False
            assert ledger.escrow_of(session, contract_id).balance_minor == 0


@pytest.mark.postgres
def test_approval_racing_the_automatic_release_releases_once(pg: Database) -> None:
    winners: set[str] = set()
    # Submitted at NOW; the review period (14 days) has run out.
    at = later(days=15)
    for round_no in range(ROUNDS):
        with pg.session() as session:
            contract_id = submitted_contract(session, agency=round_no % 2 == 1)
            milestone_id = milestone(session, contract_id, 1).id

        answers = race(
            pg,
            partial(
                services.approve_work,
                contract_id=contract_id,
                actor_id=CLIENT,
                now=at,
                milestone_id=milestone_id,
            ),
            partial(services.auto_release, milestone_id=milestone_id, now=at),
        )

        done = took_effect(answers)
        assert len(done) == 1, answers
        [loser] = the_rest(answers)
        assert isinstance(loser, Outcome) and loser.already_done, loser
        automatic = done[0] is answers[1]
        winners.add("timer" if automatic else "client")
        with pg.session() as session:
            releases = entries(session, contract_id, LedgerKind.RELEASE)
            assert [(e.amount_minor, e.actor) for e in releases] == [
                (150_000, SYSTEM_ACTOR if automatic else CLIENT)
            ]
            [released] = events(session, contract_id, "milestone_released")
            assert released.data["automatic"] is automatic
            assert released.actor == (SYSTEM_ACTOR if automatic else CLIENT)
            assert milestone(session, contract_id, 1).released_automatically is automatic
    assert winners


@pytest.mark.postgres
def test_several_sweeps_reaching_one_deadline_release_once(pg: Database) -> None:
    at = later(days=14, hours=1)
    for round_no in range(ROUNDS):
        with pg.session() as session:
            contract_id = submitted_contract(session, agency=round_no % 2 == 1)
            milestone_id = milestone(session, contract_id, 1).id

        sweep = partial(services.auto_release, milestone_id=milestone_id, now=at)

        answers = race(pg, sweep, sweep, sweep, sweep)

        assert len(took_effect(answers)) == 1, answers
        assert all(isinstance(a, Outcome) and a.already_done for a in the_rest(answers))
        with pg.session() as session:
            releases = entries(session, contract_id, LedgerKind.RELEASE)
            assert [(e.amount_minor, e.actor) for e in releases] == [(150_000, SYSTEM_ACTOR)]
            [released] = events(session, contract_id, "milestone_released")
            assert released.data["automatic"] is True
            assert milestone(session, contract_id, 1).released_automatically is True
            assert queries.due_auto_releases(session, now=at) == []


@pytest.mark.postgres
def test_two_funding_clicks_fund_one_milestone_once(pg: Database) -> None:
    for round_no in range(ROUNDS):
        with pg.session() as session:
            contract_id = active_contract(session, agency=round_no % 2 == 1)
            first_id = milestone(session, contract_id, 1).id

        from_a_command = partial(
            services.fund_milestone, contract_id=contract_id, actor_id=CLIENT, now=later(1)
        )
        from_the_card = partial(from_a_command, milestone_id=first_id)

        answers = race(pg, from_the_card, from_the_card if round_no % 2 else from_a_command)

        assert len(took_effect(answers)) == 1, answers
        for other in the_rest(answers):
            assert isinstance(other, OutOfOrder) or (
                isinstance(other, Outcome) and other.already_done
            ), other
        with pg.session() as session:
            assert milestone(session, contract_id, 1).status == MilestoneStatus.FUNDED
            assert milestone(session, contract_id, 2).status == MilestoneStatus.PENDING
            funds = entries(session, contract_id, LedgerKind.FUND)
            assert [e.amount_minor for e in funds] == [150_000]
            assert len(events(session, contract_id, "milestone_funded")) == 1
            assert ledger.escrow_of(session, contract_id).balance_minor == 150_000


@pytest.mark.postgres
def test_two_transactions_inserting_one_release_key_collide(pg: Database) -> None:
    """The unique key holds under concurrency too: the second insert waits, then fails."""
    with pg.session() as session:
        contract_id = submitted_contract(session)
        milestone_id = milestone(session, contract_id, 1).id
    row = {
        "contract_id": contract_id,
        "milestone_id": milestone_id,
        "kind": LedgerKind.RELEASE,
        "amount_minor": 150_000,
        "actor": CLIENT,
        "at": later(1),
        "key": f"release:{milestone_id}",
    }
    barrier = threading.Barrier(2)

    def insert_release() -> str:
        barrier.wait(timeout=30)
        try:
            with pg.engine.begin() as conn:
                conn.execute(insert(LedgerEntry).values(**row))
        except IntegrityError:
            return "refused"
        return "inserted"

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = sorted(pool.map(lambda _: insert_release(), range(2)))
    assert results == ["inserted", "refused"]


def test_a_second_release_entry_is_refused_by_the_ledger_key(db: Database) -> None:
    with db.session() as session:
        contract_id = submitted_contract(session)
        services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(1))
        milestone_id = milestone(session, contract_id, 1).id
    with db.session() as session, pytest.raises(IntegrityError):
        with session.begin():
            session.add(
                LedgerEntry(
                    contract_id=contract_id,
                    milestone_id=milestone_id,
                    kind=LedgerKind.RELEASE,
                    amount_minor=1,
                    actor=SYSTEM_ACTOR,
                    at=later(2),
                    key=f"release:{milestone_id}",
                )
            )
    with db.session() as session:
        assert len(entries(session, contract_id, LedgerKind.RELEASE)) == 1


# --------------------------------------------------------------------------------------
# SQLite: a crowd of writers


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    """A fresh SQLite file with a pool large enough for the whole crowd at once."""
    path = tmp_path / "crowd.sqlite3"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url, pool_size=CROWD + 5, max_overflow=5)
    yield Database("sqlite", url, engine, make_session_factory(engine))
    engine.dispose()


def test_a_crowd_of_accept_and_fund_clicks_on_sqlite_all_land_or_are_refused(
    sqlite_db: Database,
) -> None:
    for round_no in range(5):
        agency = round_no % 2 == 1
        with sqlite_db.session() as session:
            contract_id = active_contract(session, agency=agency)
            # An increase of milestone 1, proposed before it is funded: whichever
            # lands first, escrow ends up holding the new amount.
            request_id = propose(
                session, contract_id, MilestoneEdit(1, amount="2000"), agency=agency
            )
            first_id = milestone(session, contract_id, 1).id
        accept = partial(
            services.accept_request, actor_id=CLIENT, now=later(2), request_id=request_id
        )
        fund = partial(
            services.fund_milestone,
            contract_id=contract_id,
            actor_id=CLIENT,
            now=later(2),
            milestone_id=first_id,
        )

        # The provider's stale click on Accept and a command to fund "the next one"
        # are refused; everything else is the same two clicks, repeated.
        stranger_accept = partial(accept, actor_id=provider_of(agency))
        fund_next = partial(
            services.fund_milestone, contract_id=contract_id, actor_id=CLIENT, now=later(2)
        )
        crowd = [accept, fund] * (CROWD // 2 - 2) + [stranger_accept, fund_next] * 2

        answers = race(sqlite_db, *crowd)

        assert len(answers) == CROWD
        assert len(took_effect(answers)) == 2, answers
        for other in the_rest(answers):
            assert isinstance(other, NotAllowed | OutOfOrder | RequestNotPending) or (
                isinstance(other, Outcome) and other.already_done
            ), other
        with sqlite_db.session() as session:
            assert request_status(session, request_id) == RequestStatus.ACCEPTED
            first = milestone(session, contract_id, 1)
            assert (first.status, first.amount_minor) == (MilestoneStatus.FUNDED, 200_000)
            assert ledger.escrow_of(session, contract_id).balance_minor == 200_000
            assert len(events(session, contract_id, "milestone_funded")) == 1
            assert len(events(session, contract_id, "request_accepted")) == 1


def test_a_crowd_of_approvals_and_sweeps_on_sqlite_releases_once(sqlite_db: Database) -> None:
    at = later(days=15)
    for round_no in range(5):
        with sqlite_db.session() as session:
            contract_id = submitted_contract(session, agency=round_no % 2 == 1)
            milestone_id = milestone(session, contract_id, 1).id

        approve = partial(
            services.approve_work,
            contract_id=contract_id,
            actor_id=CLIENT,
            now=at,
            milestone_id=milestone_id,
        )
        sweep = partial(services.auto_release, milestone_id=milestone_id, now=at)

        answers = race(sqlite_db, *([approve, sweep] * (CROWD // 2)))

        assert len(took_effect(answers)) == 1, answers
        assert all(isinstance(a, Outcome) and a.already_done for a in the_rest(answers))
        with sqlite_db.session() as session:
            releases = entries(session, contract_id, LedgerKind.RELEASE)
            assert len(releases) == 1
            automatic = milestone(session, contract_id, 1).released_automatically
            assert (releases[0].actor == SYSTEM_ACTOR) == automatic
            [released] = events(session, contract_id, "milestone_released")
            assert released.data["automatic"] is automatic
