"""Races of the provider's webhooks, on PostgreSQL with real row locks: each call in its
own thread, session and connection, started together on a barrier, `ROUNDS` times.

A webhook is applied once however many deliveries of it arrive at the same moment; a
payment confirmed while the contract ends is either funded and then refunded or given
back, never both; and two senders never claim the same movement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import ledger, payments, services
from domain.db import read_transaction
from domain.errors import DomainError
from domain.model import (
    Contract,
    ContractStatus,
    LedgerKind,
    Milestone,
    MovementState,
    PaymentState,
    ProviderMovement,
    ProviderPayment,
)
from domain.services import payments as pay
from domain.services.payments import Received
from domain.verify import verify
from tests.conftest import Database
from tests.factories import FREELANCER, NOW, active_contract, later
from tests.services.test_provider_payments import FIRST, PROVIDER, ask, fund_key, paid_contract

ROUNDS = 8
T = TypeVar("T")


def together(database: Database, *calls: Callable[[Session], T]) -> list[T | DomainError]:
    """Run the calls at the same moment, each in its own thread, session and connection;
    a refusal is an answer, anything else raised fails the test."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[Session], T]) -> T | DomainError:
        with database.session() as session:
            barrier.wait(timeout=30)
            try:
                return call(session)
            except DomainError as refusal:
                return refusal

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=60) for future in futures]


def confirmation(key: str, webhook: str) -> Callable[[Session], Received]:
    """Stripe's confirmation of the payment for `key` (each key paid by its own intent:
    the two events Stripe sends for one payment name the same one)."""
    return partial(
        pay.payment_confirmed,
        webhook_id=webhook,
        webhook_type="checkout.session.completed",
        ledger_key=key,
        payment_intent=f"pi_{key}",
        amount_minor=FIRST,
        currency="usd",
        now=later(hours=1),
        policy=PROVIDER,
    )


def state(session: Session, contract_id: int) -> tuple[list[LedgerKind], list[str], list[str]]:
    """(ledger kinds, payment states, movement keys) of the contract; `verify` is clean."""
    with read_transaction(session):
        assert [str(d) for d in verify(session)] == []
        kinds = [e.kind for e in ledger.entries(session, contract_id)]
        paid = session.scalars(
            select(ProviderPayment.state).where(ProviderPayment.contract_id == contract_id)
        ).all()
        moved = session.scalars(
            select(ProviderMovement.key)
            .where(ProviderMovement.contract_id == contract_id)
            .order_by(ProviderMovement.id)
        ).all()
        return kinds, [str(s) for s in paid], list(moved)


def unpaid_contract(database: Database) -> tuple[int, str]:
    with database.session() as session:
        contract_id = active_contract(session)
        ask(session, contract_id)
        return contract_id, fund_key(session, contract_id)


@pytest.mark.postgres
@pytest.mark.parametrize("same_event", [True, False], ids=["same-event", "two-events"])
def test_deliveries_of_a_confirmation_at_the_same_moment_fund_once(
    pg: Database, same_event: bool
) -> None:
    for round_no in range(ROUNDS):
        contract_id, key = unpaid_contract(pg)
        webhooks = [f"evt_{round_no}", f"evt_{round_no}" if same_event else f"evt_{round_no}_b"]

        answers = together(pg, *(confirmation(key, w) for w in webhooks))

        assert all(isinstance(a, Received) for a in answers), answers
        applied = [a for a in answers if isinstance(a, Received) and a.applied]
        assert len(applied) == (1 if same_event else 2), (round_no, answers)
        with pg.session() as session:
            kinds, paid, moved = state(session, contract_id)
            assert (kinds, paid, moved) == ([LedgerKind.FUND], [PaymentState.PAID.value], [])
            assert ledger.escrow_of(session, contract_id).balance_minor == FIRST


@pytest.mark.postgres
def test_a_confirmation_racing_the_end_of_the_contract_funds_and_refunds_or_gives_back(
    pg: Database,
) -> None:
    seen: set[str] = set()
    for round_no in range(ROUNDS):
        contract_id, key = unpaid_contract(pg)
        ending = partial(
            services.end_contract, contract_id=contract_id, actor_id=FREELANCER, now=later(hours=1)
        )
        calls: list[Callable[[Session], object]] = [confirmation(key, f"evt_{round_no}"), ending]
        if round_no % 2:
            calls.reverse()

        answers = together(pg, *calls)

        assert not any(isinstance(a, DomainError) for a in answers), answers
        with pg.session() as session:
            kinds, paid, moved = state(session, contract_id)
            with read_transaction(session):
                contract = session.get(Contract, contract_id, populate_existing=True)
                assert contract is not None
                contract_status = contract.status
                milestone_id = session.scalar(
                    select(Milestone.id).where(
                        Milestone.contract_id == contract_id, Milestone.number == 1
                    )
                )
        assert contract_status == ContractStatus.CLOSED
        if kinds:  # funded first, then refunded by the end
            assert (kinds, paid, moved) == (
                [LedgerKind.FUND, LedgerKind.REFUND],
                [PaymentState.PAID.value],
                [f"refund:{milestone_id}"],
            )
            seen.add("funded-then-refunded")
        else:  # ended first: the payment is given back
            assert (paid, moved) == ([PaymentState.RETURNED.value], [f"return:pi_{key}"])
            seen.add("given-back")
    assert seen  # which ones happen depends on the scheduler; each is checked when it does


@pytest.mark.postgres
def test_two_senders_never_claim_the_same_movement(pg: Database) -> None:
    with pg.session() as session:
        contract_ids = [paid_contract(session) for _ in range(6)]
        for contract_id in contract_ids:
            services.end_contract(
                session, contract_id=contract_id, actor_id=FREELANCER, now=NOW, policy=PROVIDER
            )

    def sender(session: Session) -> list[int]:
        claims = payments.claim_movements(
            session, now=later(hours=1), lease=later(hours=1) - NOW, limit=4
        )
        return [c.id for c in claims]

    first, second = together(pg, sender, sender)

    assert isinstance(first, list) and isinstance(second, list)
    assert not set(first) & set(second)
    assert len(first) + len(second) == 6
    with pg.session() as session, read_transaction(session):
        states = session.scalars(select(ProviderMovement.state)).all()
        assert set(states) == {MovementState.PENDING}
