"""Helpers for the service tests: snapshots of the whole database, refusals, reads.

Services own their transactions, so every read here runs in its own short
transaction (`read_transaction`) and leaves the session idle for the next call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain import ledger, queries
from domain.db import read_transaction
from domain.errors import DomainError
from domain.export import export_contracts
from domain.model import Base, Contract, Event, LedgerEntry, OutboxMessage

# The tables the use-case services write (message refs and receipts belong to the
# Slack side and are not touched by a refusal either way).
SERVICE_TABLES = frozenset(
    {
        "contract",
        "party",
        "milestone",
        "change_request",
        "change",
        "ledger_entry",
        "event",
        "outbox_message",
        "reminder",
        "dispute",
    }
)


@dataclass(frozen=True)
class Snapshot:
    """Everything a refusal must leave untouched."""

    export: dict[str, Any]
    rows: dict[str, list[tuple[Any, ...]]]
    events: int
    outbox: int
    ledger: int


def snapshot(session: Session) -> Snapshot:
    with read_transaction(session):
        rows = {
            table.name: [
                tuple(row)
                for row in session.execute(select(table).order_by(*table.primary_key.columns)).all()
            ]
            for table in Base.metadata.sorted_tables
            if table.name in SERVICE_TABLES
        }
        return Snapshot(
            export=export_contracts(session),
            rows=rows,
            events=_count(session, Event),
            outbox=_count(session, OutboxMessage),
            ledger=_count(session, LedgerEntry),
        )


def _count(session: Session, model: type[Base]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def refuse(
    session: Session, error: type[DomainError], call: Callable[..., object], /, **kwargs: Any
) -> str:
    """Call a service that must refuse with exactly `error`; check nothing changed.

    Returns the refusal's message, for the test to check its wording.
    """
    before = snapshot(session)
    with pytest.raises(DomainError) as caught:
        call(session, **kwargs)
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value.message}"
    assert not session.in_transaction()
    after = snapshot(session)
    assert after.events == before.events
    assert after.outbox == before.outbox
    assert after.ledger == before.ledger
    assert after.export == before.export
    assert after.rows == before.rows
    return caught.value.message


def exported(session: Session, contract_id: int) -> dict[str, Any]:
    """The contract as `milestone-bot export` shows it."""
    with read_transaction(session):
        contracts: list[dict[str, Any]] = export_contracts(session, contract_id)["contracts"]
        return contracts[0]


def milestone(session: Session, contract_id: int, number: int) -> dict[str, Any]:
    milestones: list[dict[str, Any]] = exported(session, contract_id)["milestones"]
    found = [m for m in milestones if m["number"] == number]
    assert found, f"no milestone {number}"
    return found[0]


def statuses(session: Session, contract_id: int) -> dict[int, str]:
    """Milestone number -> status."""
    return {m["number"]: m["status"] for m in exported(session, contract_id)["milestones"]}


def request(session: Session, contract_id: int, number: int) -> dict[str, Any]:
    requests: list[dict[str, Any]] = exported(session, contract_id)["change_requests"]
    found = [r for r in requests if r["number"] == number]
    assert found, f"no request {number}"
    return found[0]


def load(session: Session, contract_id: int) -> Contract:
    """The contract row with parties and milestones (for fields export doesn't show)."""
    with read_transaction(session):
        return queries.load_contract(session, contract_id)


def events(session: Session, contract_id: int) -> list[Event]:
    with read_transaction(session):
        return queries.history(session, contract_id)


def event_kinds(session: Session, contract_id: int) -> list[str]:
    return [e.kind for e in events(session, contract_id)]


def ledger_entries(session: Session, contract_id: int) -> list[LedgerEntry]:
    with read_transaction(session):
        return ledger.entries(session, contract_id)


def escrow(session: Session, contract_id: int) -> ledger.Escrow:
    with read_transaction(session):
        return ledger.escrow_of(session, contract_id)


def counts(session: Session) -> tuple[int, int, int]:
    """(events, outbox rows, ledger entries) in the whole database."""
    shot = snapshot(session)
    return shot.events, shot.outbox, shot.ledger


def repeat_writes_nothing(session: Session, call: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Call a service that was already done: `already_done`, and no row changes."""
    before = snapshot(session)
    outcome = call(session, **kwargs)
    assert outcome.already_done, outcome
    after = snapshot(session)
    assert after.rows == before.rows
    assert after.export == before.export
    return outcome
