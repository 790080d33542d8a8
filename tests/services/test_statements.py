"""How many statements the hot paths send: a fixed number, however much they write.

An Accept click, the automatic release and the reads behind `/milestone status` lock
and read what they need in a few statements, then write each table once: history
events, reminder changes and outbox intents are collected and written together at
the end of the transaction, a statement per table, not one (or two) per row. These
budgets catch a relationship loaded row by row or a flush per event coming back.

The write budgets are PostgreSQL's, where each statement is a round trip. SQLite (no
round trips) inserts rows that must return their ids in order one by one: it can't
promise the order of a multi-row `INSERT … RETURNING`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from domain import queries, services
from domain.db import read_transaction
from domain.model import MilestoneStatus, RequestStatus
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone
from tests.conftest import Database
from tests.factories import (
    CLIENT,
    FREELANCER,
    active_contract,
    funded_contract,
    later,
    submitted_contract,
)
from tests.services.conftest import empty_database
from tests.services.support import event_kinds, load, request, statuses

VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE")  # not BEGIN, SAVEPOINT or PRAGMA


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    """The statements the engine sends inside the block."""
    sent: list[str] = []

    def remember(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(VERBS):
            sent.append(" ".join(statement.split())[:120])

    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", remember)


@pytest.fixture
def pg(postgresql_database: Database) -> Database:
    """The service suite's PostgreSQL database, emptied."""
    empty_database(postgresql_database)
    return postgresql_database


def statements(db: Database, session: Session, call: Callable[[], object]) -> list[str]:
    session.expunge_all()  # as in a fresh session: nothing already loaded
    with counted(db.engine) as sent:
        call()
    return sent


def propose(session: Session, contract_id: int, *changes: services.ChangeInput) -> int:
    outcome = services.propose_changes(
        session, contract_id=contract_id, actor_id=FREELANCER, changes=list(changes), now=later(1)
    )
    assert outcome.request_id is not None
    return outcome.request_id


def accept(session: Session, contract_id: int, request_id: int) -> services.Outcome:
    return services.accept_request(
        session, actor_id=CLIENT, now=later(2), contract_id=contract_id, request_id=request_id
    )


@pytest.mark.postgres
def test_an_accept_click_sends_nine_statements(pg: Database) -> None:
    with pg.session() as session:
        contract_id = funded_contract(session)
        request_id = propose(session, contract_id, MilestoneEdit(number=2, amount="2600"))

        sent = statements(pg, session, lambda: accept(session, contract_id, request_id))

        # Lock the contract (found through the request) with its parties; milestones;
        # the request and the other pending ones, with their changes. Then the request,
        # the milestone and the contract's version; the events; their webhook deliveries
        # (one `INSERT … SELECT` from the endpoints, inserting nothing when there are
        # none: domain/webhooks.fan_out); the reminder; the intents.
        assert len(sent) == 10, "\n".join(sent)
        assert request(session, contract_id, 1)["status"] == RequestStatus.ACCEPTED


@pytest.mark.postgres
def test_a_larger_accept_writes_each_table_once_whatever_it_changes(pg: Database) -> None:
    """Three changes (a top-up of the funded milestone that also moves its due date, a
    new milestone, a deletion) with another request pending: no statement per event,
    per intent or per reminder."""
    with pg.session() as session:
        contract_id = funded_contract(session)
        services.change_milestones(
            session,
            contract_id=contract_id,
            actor_id=CLIENT,
            changes=[NewMilestone("Extra", "300", date(2026, 12, 20))],
            now=later(1),
        )
        propose(session, contract_id, MilestoneEdit(number=3, title="Polish"))
        request_id = propose(
            session,
            contract_id,
            MilestoneEdit(number=1, amount="1600", due_date=date(2026, 12, 10)),
            NewMilestone("Launch", "900", date(2027, 1, 10)),
            MilestoneDeletion(number=2),
        )

        sent = statements(pg, session, lambda: accept(session, contract_id, request_id))

        # Reading as a small accept does (3). The top-up's ledger entry is written at
        # once, where its unique key is checked, with what changed so far: the request
        # and milestone 1 (3). Then milestone 4, milestone 2, the added change's number
        # and the contract (4); the five events; the reminders cancelled (the request's,
        # milestone 1's overdue nudges) and the new overdue nudges; the intents. Plus
        # one for the events' webhook deliveries, however many events.
        assert len(sent) == 15, "\n".join(sent)
        assert statuses(session, contract_id) == {
            1: MilestoneStatus.FUNDED,
            2: MilestoneStatus.DELETED,
            3: MilestoneStatus.PENDING,
            4: MilestoneStatus.PENDING,
        }
        assert request(session, contract_id, 1)["status"] == RequestStatus.PENDING
        # One INSERT for the five events, in the order they happened.
        assert event_kinds(session, contract_id)[-5:] == [
            "milestone_edited",
            "escrow_topped_up",
            "milestone_added",
            "milestone_deleted",
            "request_accepted",
        ]


@pytest.mark.postgres
def test_an_automatic_release_sends_fourteen_statements(pg: Database) -> None:
    with pg.session() as session:
        contract_id = submitted_contract(session)
        milestone_id = load(session, contract_id).milestones[0].id

        sent = statements(
            pg,
            session,
            lambda: services.auto_release(session, milestone_id=milestone_id, now=later(days=15)),
        )

        # Claim the contract (skip locked); load it, its parties and milestones; pending
        # requests; what is held; the version; the ledger entry; the milestone; the
        # event; the reminders cancelled and the nudge to fund the next one; whether the
        # client wants a direct message about it (their notification choice); the intents.
        # Plus one for the event's webhook deliveries (domain/webhooks.fan_out).
        assert len(sent) == 15, "\n".join(sent)
        assert statuses(session, contract_id)[1] == MilestoneStatus.RELEASED


@pytest.mark.postgres
def test_a_batch_of_automatic_releases_sends_as_many_statements_as_one(pg: Database) -> None:
    with pg.session() as session:
        contract_ids = [submitted_contract(session) for _ in range(5)]

        outcomes: list[services.Outcome] = []
        sent = statements(
            pg,
            session,
            lambda: outcomes.extend(services.release_due(session, now=later(days=15))),
        )

        assert len(sent) == 15, "\n".join(sent)  # one webhook fan-out for the whole batch
        assert sorted(o.contract_id for o in outcomes) == sorted(contract_ids)
        assert all(statuses(session, c)[1] == MilestoneStatus.RELEASED for c in contract_ids)
        assert all(o.outbox_ids for o in outcomes)  # each its own intents


def test_a_contract_reads_in_two_statements_and_its_pending_requests_in_one(
    db: Database,
) -> None:
    with db.session() as session:
        contract_id = active_contract(session, amounts=("100", "200", "300"))
        propose(session, contract_id, MilestoneEdit(number=2, amount="250"))
        propose(session, contract_id, MilestoneEdit(number=3, amount="350"))

        def read() -> None:
            with read_transaction(session):
                contract = queries.load_contract(session, contract_id)
                pending = queries.pending_requests(session, contract_id)
            assert len(contract.parties) == 2 and len(contract.milestones) == 3
            assert [len(r.changes) for r in pending] == [1, 1]

        assert len(statements(db, session, read)) == 3
