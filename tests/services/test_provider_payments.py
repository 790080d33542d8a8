"""Money through a payments provider (`PAYMENTS=stripe`): a fund asks the client to pay,
the provider's webhooks confirm, fail or reverse the payment, and releases and refunds
of what the client paid become movements for the payments sender to carry out.

On SQLite and PostgreSQL; the races are in test_provider_payment_races.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain import ledger, payments, queries, services
from domain.db import read_transaction
from domain.errors import WrongPhase
from domain.model import (
    SYSTEM_ACTOR,
    Dispute,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    MovementState,
    PaymentState,
    ProviderMovement,
    ProviderPayment,
)
from domain.payments import Direction, Ours, Theirs, differences
from domain.policy import DEFAULT_POLICY, Policy
from domain.services import MilestoneEdit, Outcome
from domain.services import payments as pay
from domain.services.payments import Received
from domain.verify import verify
from tests.factories import (
    CLIENT,
    FREELANCER,
    MANAGER_2,
    MEMBER,
    NOW,
    active_contract,
    funded_contract,
    later,
    provider_of,
)
from tests.services.support import refuse, snapshot

PROVIDER = Policy(pay_through_provider=True)
LEASE = timedelta(minutes=1)
FIRST = 150_000  # milestone 1 of `active_contract`: $1,500.00
APPROVED = later(hours=1)  # when `approve` approves

Act = Callable[[Session, int], None]  # something done to a contract


# --------------------------------------------------------------------------------------
# Reading back


@dataclass(frozen=True)
class Payment:
    kind: LedgerKind
    ledger_key: str
    state: PaymentState
    amount_minor: int
    currency: str
    attempt: int
    token: str
    payment_intent: str | None


@dataclass(frozen=True)
class Moved:
    key: str
    kind: LedgerKind
    amount_minor: int
    state: MovementState
    ledger_entry_id: int | None


def payments_of(session: Session, contract_id: int) -> list[Payment]:
    with read_transaction(session):
        rows = session.scalars(
            select(ProviderPayment)
            .where(ProviderPayment.contract_id == contract_id)
            .order_by(ProviderPayment.id)
            .execution_options(populate_existing=True)
        )
        return [
            Payment(
                p.kind,
                p.ledger_key,
                p.state,
                p.amount_minor,
                p.currency,
                p.attempt,
                p.token,
                p.payment_intent,
            )
            for p in rows
        ]


def movements_of(session: Session, contract_id: int) -> list[Moved]:
    with read_transaction(session):
        rows = session.scalars(
            select(ProviderMovement)
            .where(ProviderMovement.contract_id == contract_id)
            .order_by(ProviderMovement.id)
            .execution_options(populate_existing=True)
        )
        return [Moved(m.key, m.kind, m.amount_minor, m.state, m.ledger_entry_id) for m in rows]


def count(session: Session, model: type[ProviderPayment] | type[ProviderMovement]) -> int:
    with read_transaction(session):
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


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


def entries(session: Session, contract_id: int) -> list[tuple[LedgerKind, str, int]]:
    with read_transaction(session):
        return [(e.kind, e.key, e.amount_minor) for e in ledger.entries(session, contract_id)]


def entry_ids(session: Session, contract_id: int, *kinds: LedgerKind) -> dict[str, int]:
    with read_transaction(session):
        return {e.key: e.id for e in ledger.entries(session, contract_id) if e.kind in kinds}


def held(session: Session, contract_id: int) -> int:
    with read_transaction(session):
        return ledger.escrow_of(session, contract_id).balance_minor


def history(session: Session, contract_id: int, kind: str) -> int:
    with read_transaction(session):
        return sum(1 for e in queries.history(session, contract_id) if e.kind == kind)


def clean(session: Session) -> None:
    with read_transaction(session):
        assert [str(d) for d in verify(session)] == []


# --------------------------------------------------------------------------------------
# Acting


def ask(session: Session, contract_id: int, *, now: datetime = NOW) -> Outcome:
    """The client funds through the provider."""
    return services.fund_milestone(
        session, contract_id=contract_id, actor_id=CLIENT, now=now, policy=PROVIDER
    )


def confirm(
    session: Session,
    key: str,
    amount: int | None,
    *,
    webhook: str = "evt_paid",
    intent: str = "pi_fund",
    currency: str | None = "usd",
    now: datetime = NOW,
) -> Received:
    return pay.payment_confirmed(
        session,
        webhook_id=webhook,
        webhook_type="checkout.session.completed",
        ledger_key=key,
        payment_intent=intent,
        amount_minor=amount,
        currency=currency,
        now=now,
        policy=PROVIDER,
    )


def fund_key(session: Session, contract_id: int, number: int = 1) -> str:
    return f"fund:{milestone_row(session, contract_id, number).id}"


def paid_contract(session: Session, *, agency: bool = False) -> int:
    """An active contract whose milestone 1 the client paid through the provider."""
    contract_id = active_contract(session, agency=agency)
    ask(session, contract_id)
    key = fund_key(session, contract_id)
    assert confirm(session, key, FIRST, webhook=f"evt_paid_{contract_id}").applied
    return contract_id


def submit(session: Session, contract_id: int, *, agency: bool = False) -> None:
    services.submit_work(
        session, contract_id=contract_id, actor_id=provider_of(agency), note="done", now=NOW
    )


def approve(session: Session, contract_id: int) -> None:
    services.approve_work(
        session, contract_id=contract_id, actor_id=CLIENT, now=APPROVED, policy=PROVIDER
    )


def link_payout_account(
    session: Session, user_id: str, account_id: str, *, ready: bool, webhook: str
) -> None:
    link = pay.payouts_link(session, user_id=user_id, team_id="T0001", now=NOW)
    pay.record_payout_account(session, token=link.token, account_id=account_id, now=NOW)
    assert pay.account_updated(
        session,
        webhook_id=webhook,
        webhook_type="account.updated",
        account_id=account_id,
        ready=ready,
        now=NOW,
    ).applied


def claim(session: Session, now: datetime) -> list[payments.Claimed]:
    return payments.claim_movements(session, now=now, lease=LEASE)


# --------------------------------------------------------------------------------------
# Asking to pay


def test_funding_through_the_provider_asks_for_a_payment_and_holds_nothing_yet(
    session: Session,
) -> None:
    contract_id = active_contract(session)
    key = fund_key(session, contract_id)

    outcome = ask(session, contract_id)

    assert outcome.pay_token
    assert outcome.milestone_number == 1
    assert "$1,500.00" in outcome.summary and pay.PAY_LINK_NOTE in outcome.summary
    assert payments_of(session, contract_id) == [
        Payment(
            LedgerKind.FUND, key, PaymentState.PENDING, FIRST, "USD", 1, outcome.pay_token, None
        )
    ]
    assert milestone_row(session, contract_id).status == MilestoneStatus.PENDING
    assert entries(session, contract_id) == []
    assert held(session, contract_id) == 0
    assert history(session, contract_id, "milestone_funded") == 0
    found = pay.to_pay(session, outcome.pay_token)
    assert found is not None and found.movement.key == key
    assert (found.state, found.movement.amount_minor) == (PaymentState.PENDING, FIRST)


def test_funding_again_before_paying_gives_the_same_link(session: Session) -> None:
    contract_id = active_contract(session)
    first = ask(session, contract_id)

    again = ask(session, contract_id, now=later(hours=2))

    assert again.pay_token == first.pay_token
    [payment] = payments_of(session, contract_id)
    assert (payment.attempt, payment.state) == (1, PaymentState.PENDING)


# --------------------------------------------------------------------------------------
# Confirmed


def test_a_confirmed_payment_funds_the_milestone(session: Session) -> None:
    contract_id = active_contract(session)
    ask(session, contract_id)
    key = fund_key(session, contract_id)

    received = confirm(session, key, FIRST, now=later(hours=1))

    assert received.applied
    assert milestone_row(session, contract_id).status == MilestoneStatus.FUNDED
    assert entries(session, contract_id) == [(LedgerKind.FUND, key, FIRST)]
    assert held(session, contract_id) == FIRST
    assert history(session, contract_id, "milestone_funded") == 1
    [payment] = payments_of(session, contract_id)
    assert (payment.state, payment.payment_intent) == (PaymentState.PAID, "pi_fund")
    assert movements_of(session, contract_id) == []
    clean(session)


def test_a_replayed_confirmation_changes_nothing(session: Session) -> None:
    contract_id = paid_contract(session)
    before = snapshot(session)
    paid_before = payments_of(session, contract_id)

    key = fund_key(session, contract_id)
    replay = confirm(session, key, FIRST, webhook=f"evt_paid_{contract_id}", now=later(hours=3))

    assert replay == Received(False, "already received")
    assert snapshot(session) == before
    assert payments_of(session, contract_id) == paid_before


def test_a_second_event_for_a_paid_payment_does_not_fund_again(session: Session) -> None:
    contract_id = paid_contract(session)
    key = fund_key(session, contract_id)

    second = confirm(session, key, FIRST, webhook="evt_other", now=later(hours=3))

    assert "already paid" in second.note
    assert entries(session, contract_id) == [(LedgerKind.FUND, key, FIRST)]
    assert history(session, contract_id, "milestone_funded") == 1
    assert [p.state for p in payments_of(session, contract_id)] == [PaymentState.PAID]
    assert movements_of(session, contract_id) == []


def test_a_confirmation_of_a_payment_that_is_not_ours_changes_nothing(session: Session) -> None:
    contract_id = active_contract(session)
    ask(session, contract_id)
    before = snapshot(session)

    received = confirm(session, "fund:999", FIRST, intent="pi_elsewhere")

    assert received == Received(True, "not a payment of ours")
    assert snapshot(session) == before
    assert [p.state for p in payments_of(session, contract_id)] == [PaymentState.PENDING]
    assert confirm(session, "fund:999", FIRST, intent="pi_elsewhere").applied is False


# --------------------------------------------------------------------------------------
# Payments that no longer fit are given back


def _contract_ended(session: Session, contract_id: int) -> None:
    services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=NOW)


@pytest.mark.parametrize(
    ("amount", "currency", "meanwhile", "why"),
    [
        pytest.param(FIRST - 1, "usd", None, "not the $1,500.00 asked for", id="wrong-amount"),
        pytest.param(FIRST, "eur", None, "paid in EUR", id="wrong-currency"),
        pytest.param(FIRST, "usd", _contract_ended, "is closed", id="contract-ended"),
    ],
)
def test_a_payment_that_no_longer_fits_is_given_back_and_funds_nothing(
    session: Session, amount: int, currency: str, meanwhile: Act | None, why: str
) -> None:
    contract_id = active_contract(session)
    ask(session, contract_id)
    key = fund_key(session, contract_id)
    if meanwhile is not None:
        meanwhile(session, contract_id)

    received = confirm(session, key, amount, currency=currency, now=later(hours=1))

    assert received.applied and "returned" in received.note and why in received.note
    [payment] = payments_of(session, contract_id)
    assert payment.state == PaymentState.RETURNED
    assert milestone_row(session, contract_id).status == MilestoneStatus.PENDING
    assert entries(session, contract_id) == []
    assert history(session, contract_id, "milestone_funded") == 0
    assert movements_of(session, contract_id) == [
        Moved("return:pi_fund", LedgerKind.REFUND, amount, MovementState.PENDING, None)
    ]
    [claimed] = claim(session, later(hours=1))
    assert claimed.movement is not None
    assert claimed.movement.direction == Direction.TO_CLIENT
    assert claimed.movement.paid_with == ("pi_fund",)
    clean(session)


def test_a_payment_for_a_milestone_that_changed_is_given_back_and_asked_anew(
    session: Session,
) -> None:
    contract_id = active_contract(session)
    asked = ask(session, contract_id)
    key = fund_key(session, contract_id)
    proposal = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(1, amount="1750")],
        now=NOW,
    )
    services.accept_request(session, actor_id=CLIENT, now=NOW, request_id=proposal.request_id)

    received = confirm(session, key, FIRST, now=later(hours=1))
    again = ask(session, contract_id, now=later(hours=2))

    assert "now asks for $1,750.00" in received.note
    assert again.pay_token != asked.pay_token
    [payment] = payments_of(session, contract_id)
    assert (payment.state, payment.attempt, payment.amount_minor) == (
        PaymentState.PENDING,
        2,
        175_000,
    )
    assert confirm(session, key, 175_000, webhook="evt_2", intent="pi_2", now=later(hours=3))
    assert entries(session, contract_id) == [(LedgerKind.FUND, key, 175_000)]
    # The first payment is still given back, and the sender can still name it.
    [give_back] = [c for c in claim(session, later(hours=3)) if c.movement is not None]
    assert give_back.movement is not None
    assert (give_back.movement.key, give_back.movement.amount_minor) == ("return:pi_fund", FIRST)
    assert give_back.movement.paid_with == ("pi_fund",)


def test_a_wrong_amount_is_given_back_as_it_was_paid(session: Session) -> None:
    contract_id = active_contract(session)
    ask(session, contract_id)

    confirm(session, fund_key(session, contract_id), FIRST + 10_000)

    [give_back] = movements_of(session, contract_id)
    assert give_back.amount_minor == FIRST + 10_000


def test_a_second_event_for_a_returned_payment_gives_it_back_once(session: Session) -> None:
    contract_id = active_contract(session)
    ask(session, contract_id)
    key = fund_key(session, contract_id)
    _contract_ended(session, contract_id)
    confirm(session, key, FIRST, webhook="evt_checkout")

    second = confirm(session, key, FIRST, webhook="evt_intent", now=later(hours=1))

    assert second.applied
    assert [m.key for m in movements_of(session, contract_id)] == ["return:pi_fund"]
    assert [p.state for p in payments_of(session, contract_id)] == [PaymentState.RETURNED]


def test_a_second_payment_for_a_milestone_already_paid_is_given_back(session: Session) -> None:
    contract_id = paid_contract(session)
    key = fund_key(session, contract_id)

    confirm(session, key, FIRST, webhook="evt_again", intent="pi_again", now=later(hours=1))

    assert entries(session, contract_id) == [(LedgerKind.FUND, key, FIRST)]
    [give_back] = movements_of(session, contract_id)
    assert (give_back.kind, give_back.amount_minor, give_back.ledger_entry_id) == (
        LedgerKind.REFUND,
        FIRST,
        None,
    )
    [claimed] = claim(session, later(hours=1))
    assert claimed.movement is not None and claimed.movement.paid_with == ("pi_again",)


# --------------------------------------------------------------------------------------
# Failed


def test_a_failed_payment_is_asked_again_with_a_new_link_that_funds(session: Session) -> None:
    contract_id = active_contract(session)
    first = ask(session, contract_id)
    key = fund_key(session, contract_id)

    failed = pay.payment_failed(
        session,
        webhook_id="evt_failed",
        webhook_type="payment_intent.payment_failed",
        ledger_key=key,
        payment_intent="pi_fund",
        reason="card declined",
        now=later(hours=1),
    )

    assert failed.applied
    [payment] = payments_of(session, contract_id)
    assert payment.state == PaymentState.FAILED
    assert milestone_row(session, contract_id).status == MilestoneStatus.PENDING

    again = ask(session, contract_id, now=later(hours=2))

    assert again.pay_token and again.pay_token != first.pay_token
    [payment] = payments_of(session, contract_id)
    assert (payment.state, payment.attempt, payment.token) == (
        PaymentState.PENDING,
        2,
        again.pay_token,
    )
    assert pay.to_pay(session, first.pay_token or "") is None

    assert confirm(session, key, FIRST, webhook="evt_2", intent="pi_2", now=later(hours=3)).applied
    assert milestone_row(session, contract_id).status == MilestoneStatus.FUNDED
    assert entries(session, contract_id) == [(LedgerKind.FUND, key, FIRST)]
    assert payments_of(session, contract_id)[0].payment_intent == "pi_2"


# --------------------------------------------------------------------------------------
# Releases and refunds of what the client paid


def _approved(session: Session, contract_id: int) -> None:
    submit(session, contract_id)
    approve(session, contract_id)


def _released_automatically(session: Session, contract_id: int) -> None:
    submit(session, contract_id)
    [outcome] = services.release_due(session, now=later(days=15), policy=PROVIDER)
    assert not outcome.already_done


def _partly_released(session: Session, contract_id: int) -> None:
    services.release_part(
        session, contract_id=contract_id, actor_id=CLIENT, number=1, amount="500", now=NOW
    )


@pytest.mark.parametrize(
    ("act", "expected"),
    [
        pytest.param(_approved, [("release:{m}", LedgerKind.RELEASE, FIRST)], id="approved"),
        pytest.param(
            _released_automatically,
            [("release:{m}", LedgerKind.RELEASE, FIRST)],
            id="automatic",
        ),
        pytest.param(
            _partly_released,
            [("release:{m}:part:1", LedgerKind.RELEASE, 50_000)],
            id="partial",
        ),
        pytest.param(_contract_ended, [("refund:{m}", LedgerKind.REFUND, FIRST)], id="end-refund"),
    ],
)
def test_money_out_of_a_provider_paid_milestone_becomes_one_movement_per_entry(
    session: Session, act: Act, expected: list[tuple[str, LedgerKind, int]]
) -> None:
    contract_id = paid_contract(session)
    mid = milestone_row(session, contract_id).id

    act(session, contract_id)

    ids = entry_ids(session, contract_id, LedgerKind.RELEASE, LedgerKind.REFUND)
    keys = [(key.format(m=mid), kind, amount) for key, kind, amount in expected]
    assert movements_of(session, contract_id) == [
        Moved(key, kind, amount, MovementState.PENDING, ids[key]) for key, kind, amount in keys
    ]
    assert len(ids) == len(keys)
    clean(session)


def test_ending_after_a_partial_release_moves_each_entry_once(session: Session) -> None:
    contract_id = paid_contract(session)
    mid = milestone_row(session, contract_id).id
    _partly_released(session, contract_id)

    _contract_ended(session, contract_id)

    assert [(m.key, m.amount_minor) for m in movements_of(session, contract_id)] == [
        (f"release:{mid}:part:1", 50_000),
        (f"refund:{mid}", 100_000),
    ]


def test_in_ledger_mode_nothing_is_paid_or_moved_through_the_provider(session: Session) -> None:
    contract_id = funded_contract(session)
    submit(session, contract_id)
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    _contract_ended(session, contract_id)

    kinds = [kind for kind, _, _ in entries(session, contract_id)]
    assert kinds == [LedgerKind.FUND, LedgerKind.RELEASE, LedgerKind.FUND, LedgerKind.REFUND]
    assert count(session, ProviderPayment) == 0
    assert count(session, ProviderMovement) == 0
    assert DEFAULT_POLICY.pay_through_provider is False


# --------------------------------------------------------------------------------------
# Claiming movements: the payout account


def test_a_release_waits_for_a_ready_payout_account_of_the_provider_side(
    session: Session,
) -> None:
    contract_id = paid_contract(session)
    mid = milestone_row(session, contract_id).id
    _approved(session, contract_id)
    link_payout_account(session, CLIENT, "acct_client", ready=True, webhook="evt_a1")
    link_payout_account(session, FREELANCER, "acct_free", ready=False, webhook="evt_a2")

    [waiting] = claim(session, APPROVED)

    assert waiting.movement is None and waiting.attempts == 1
    assert waiting.waiting is not None and "payout account" in waiting.waiting
    assert claim(session, APPROVED) == []  # leased

    pay.account_updated(
        session,
        webhook_id="evt_a3",
        webhook_type="account.updated",
        account_id="acct_free",
        ready=True,
        now=APPROVED,
    )
    [ready] = claim(session, APPROVED + LEASE)

    assert ready.id == waiting.id and ready.attempts == 2
    assert ready.movement is not None
    # The provider's idempotency key: the ledger key and a part fixed when it was queued.
    once = ready.movement.once
    assert once.startswith(f"release:{mid}:") and len(once) > len(f"release:{mid}:")
    assert ready.movement == payments.Movement(
        key=f"release:{mid}",
        kind=LedgerKind.RELEASE,
        contract_id=contract_id,
        milestone_id=mid,
        amount_minor=FIRST,
        currency="USD",
        destination="acct_free",
        paid_with=("pi_fund",),
        idempotency_key=once,
    )
    [again] = claim(session, APPROVED + 2 * LEASE)  # a retry is the same request
    assert again.movement is not None and again.movement.once == once
    payments.movement_sent(session, ready.id, ref="tr_1", now=APPROVED + LEASE)
    assert claim(session, later(days=1)) == []
    assert [m.state for m in movements_of(session, contract_id)] == [MovementState.SENT]


def test_an_agency_release_goes_to_a_manager_with_a_ready_account(session: Session) -> None:
    contract_id = paid_contract(session, agency=True)
    submit(session, contract_id, agency=True)
    approve(session, contract_id)
    link_payout_account(session, MEMBER, "acct_member", ready=True, webhook="evt_a1")

    [waiting] = claim(session, APPROVED)
    assert waiting.movement is None

    link_payout_account(session, MANAGER_2, "acct_manager", ready=True, webhook="evt_a2")
    [ready] = claim(session, APPROVED + LEASE)

    assert ready.movement is not None and ready.movement.destination == "acct_manager"


def test_an_account_becoming_ready_wakes_the_release_waiting_for_it(session: Session) -> None:
    contract_id = paid_contract(session)
    _approved(session, contract_id)
    link_payout_account(session, FREELANCER, "acct_free", ready=False, webhook="evt_a1")
    [waiting] = claim(session, APPROVED)
    assert waiting.movement is None
    payments.movement_later(
        session,
        waiting.id,
        at=APPROVED + payments.NO_ACCOUNT_WAIT,
        reason="no account",
        counted=False,
    )
    soon = APPROVED + timedelta(minutes=1)

    pay.account_updated(
        session,
        webhook_id="evt_a2",
        webhook_type="account.updated",
        account_id="acct_free",
        ready=True,
        now=soon,
    )

    [ready] = claim(session, soon)
    assert ready.movement is not None and ready.movement.destination == "acct_free"


def test_a_movement_refused_by_the_provider_is_not_claimed_again(session: Session) -> None:
    contract_id = paid_contract(session)
    _contract_ended(session, contract_id)
    [refund] = claim(session, NOW)
    assert refund.movement is not None and refund.movement.paid_with == ("pi_fund",)

    payments.movement_refused(session, refund.id, reason="charge already refunded")

    assert claim(session, later(days=1)) == []
    assert [m.state for m in movements_of(session, contract_id)] == [MovementState.FAILED]


# --------------------------------------------------------------------------------------
# Top-ups


def _increased(session: Session, contract_id: int, amount: str = "1750") -> None:
    proposal = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(1, amount=amount)],
        now=NOW,
    )
    services.accept_request(session, actor_id=CLIENT, now=NOW, request_id=proposal.request_id)


def test_an_increase_of_a_paid_milestone_is_owed_and_its_release_waits_for_it(
    session: Session,
) -> None:
    contract_id = paid_contract(session)
    mid = milestone_row(session, contract_id).id
    link_payout_account(session, FREELANCER, "acct_free", ready=True, webhook="evt_a1")

    _increased(session, contract_id)

    [top_up_key] = entry_ids(session, contract_id, LedgerKind.TOP_UP)
    [_, owed] = payments_of(session, contract_id)
    assert (owed.kind, owed.ledger_key, owed.state, owed.amount_minor) == (
        LedgerKind.TOP_UP,
        top_up_key,
        PaymentState.PENDING,
        25_000,
    )
    asked = ask(session, contract_id)
    assert asked.pay_token == owed.token and "$250.00 top-up" in asked.summary

    _approved(session, contract_id)
    [waiting] = claim(session, APPROVED)
    assert waiting.movement is None
    assert waiting.waiting is not None and "top-up" in waiting.waiting

    paid = confirm(session, top_up_key, 25_000, webhook="evt_top", intent="pi_top", now=APPROVED)
    assert paid.applied

    assert [p.state for p in payments_of(session, contract_id)] == [PaymentState.PAID] * 2
    assert [kind for kind, _, _ in entries(session, contract_id)].count(LedgerKind.TOP_UP) == 1
    [ready] = claim(session, APPROVED + LEASE)
    assert ready.movement is not None
    assert (ready.movement.key, ready.movement.amount_minor) == (f"release:{mid}", 175_000)
    assert set(ready.movement.paid_with) == {"pi_fund", "pi_top"}
    clean(session)


def test_a_failed_top_up_is_asked_again_with_a_new_link(session: Session) -> None:
    contract_id = paid_contract(session)
    _increased(session, contract_id)
    [top_up_key] = entry_ids(session, contract_id, LedgerKind.TOP_UP)
    first = ask(session, contract_id)
    pay.payment_failed(
        session,
        webhook_id="evt_failed",
        webhook_type="payment_intent.payment_failed",
        ledger_key=top_up_key,
        payment_intent="pi_top",
        reason="card declined",
        now=NOW,
    )

    again = ask(session, contract_id, now=later(hours=1))

    assert again.pay_token and again.pay_token != first.pay_token
    owed = payments_of(session, contract_id)[1]
    assert (owed.state, owed.attempt) == (PaymentState.PENDING, 2)


def test_ending_before_the_top_up_is_paid_gives_back_no_more_than_was_paid(
    session: Session,
) -> None:
    contract_id = paid_contract(session)
    _increased(session, contract_id)

    _contract_ended(session, contract_id)

    paid = sum(
        p.amount_minor for p in payments_of(session, contract_id) if p.state == PaymentState.PAID
    )
    given_back = sum(m.amount_minor for m in movements_of(session, contract_id))
    assert given_back <= paid == FIRST


def test_a_top_up_paid_after_the_contract_ended_is_given_back(session: Session) -> None:
    contract_id = paid_contract(session)
    _increased(session, contract_id)
    [top_up_key] = entry_ids(session, contract_id, LedgerKind.TOP_UP)
    _contract_ended(session, contract_id)

    received = confirm(session, top_up_key, 25_000, webhook="evt_top", intent="pi_top")

    assert "returned" in received.note
    owed = payments_of(session, contract_id)[1]
    assert owed.state == PaymentState.RETURNED
    assert "return:pi_top" in [m.key for m in movements_of(session, contract_id)]


# --------------------------------------------------------------------------------------
# Reversed


@pytest.mark.parametrize("submitted", [False, True], ids=["funded", "submitted"])
def test_a_reversed_payment_freezes_the_milestone_under_a_system_dispute(
    session: Session, submitted: bool
) -> None:
    contract_id = paid_contract(session)
    if submitted:
        submit(session, contract_id)

    def reverse(webhook: str) -> Received:
        return pay.payment_reversed(
            session,
            webhook_id=webhook,
            webhook_type="charge.dispute.created",
            payment_intent="pi_fund",
            reason="the client disputed the card payment",
            now=later(hours=2),
            policy=PROVIDER,
        )

    assert reverse("evt_rev").applied

    assert milestone_row(session, contract_id).status == MilestoneStatus.DISPUTED
    assert [p.state for p in payments_of(session, contract_id)] == [PaymentState.REVERSED]
    with read_transaction(session):
        dispute = session.scalar(select(Dispute).where(Dispute.contract_id == contract_id))
        assert dispute is not None
        assert (dispute.opened_by, dispute.held_minor) == (SYSTEM_ACTOR, FIRST)
    assert held(session, contract_id) == FIRST
    assert history(session, contract_id, "milestone_disputed") == 1
    if submitted:
        message = refuse(
            session,
            WrongPhase,
            services.approve_work,
            contract_id=contract_id,
            actor_id=CLIENT,
            now=later(hours=3),
        )
        assert services.release_due(session, now=later(days=15), policy=PROVIDER) == []
    else:
        message = refuse(
            session,
            WrongPhase,
            services.release_part,
            contract_id=contract_id,
            actor_id=CLIENT,
            number=1,
            amount="500",
            now=later(hours=3),
        )
    assert "frozen" in message
    assert movements_of(session, contract_id) == []
    assert reverse("evt_rev") == Received(False, "already received")
    assert history(session, contract_id, "milestone_disputed") == 1
    clean(session)


def test_a_payment_reversed_after_its_release_freezes_nothing(session: Session) -> None:
    contract_id = paid_contract(session)
    _approved(session, contract_id)

    received = pay.payment_reversed(
        session,
        webhook_id="evt_rev",
        webhook_type="charge.refunded",
        payment_intent="pi_fund",
        reason="the charge was refunded",
        now=later(days=1),
        policy=PROVIDER,
    )

    assert received.applied and "nothing held" in received.note
    assert milestone_row(session, contract_id).status == MilestoneStatus.RELEASED
    assert history(session, contract_id, "milestone_disputed") == 0
    assert [m.kind for m in movements_of(session, contract_id)] == [LedgerKind.RELEASE]


# --------------------------------------------------------------------------------------
# Reconcile


def _ours(
    *,
    payments_: tuple[tuple[str, str, int], ...] = (("fund:1", "pi_1", FIRST),),
    movements: tuple[tuple[str, str, int, str], ...] = (
        ("release:1", "release", FIRST, MovementState.SENT),
    ),
) -> Ours:
    return Ours(contract_id=7, currency="USD", payments=payments_, movements=movements)


THEIRS = (
    Theirs("pi_1", "payment", "fund:1", FIRST, "USD"),
    Theirs("tr_1", "transfer", "release:1", FIRST, "USD"),
)


def test_reconcile_finds_nothing_when_the_provider_agrees() -> None:
    assert differences(_ours(), THEIRS) == []
    pending = _ours(movements=(("release:1", "release", FIRST, MovementState.PENDING),))
    assert differences(pending, THEIRS[:1]) == []


def test_reconcile_reports_a_payment_the_provider_lacks() -> None:
    [found] = differences(_ours(), THEIRS[1:])
    assert "fund:1" in found and "pi_1" in found and "lacks" in found


def test_reconcile_reports_a_payment_of_another_amount() -> None:
    wrong = Theirs("pi_1", "payment", "fund:1", FIRST - 1, "USD")
    [found] = differences(_ours(), (wrong, THEIRS[1]))
    assert "fund:1" in found and str(FIRST - 1) in found


def test_reconcile_reports_a_transfer_never_asked_for() -> None:
    extra = Theirs("tr_9", "transfer", "release:99", 10_000, "USD")
    [found] = differences(_ours(), (*THEIRS, extra))
    assert "release:99" in found and "never asked" in found


def test_reconcile_reports_a_movement_the_provider_refused() -> None:
    refused = _ours(movements=(("release:1", "release", FIRST, MovementState.FAILED),))
    [found] = differences(refused, THEIRS[:1])
    assert "release:1" in found and "refused" in found


def test_reconcile_reports_a_transfer_of_another_amount() -> None:
    short = Theirs("tr_1", "transfer", "release:1", FIRST, "USD", reversed_minor=1)
    [found] = differences(_ours(), (THEIRS[0], short))
    assert "release:1" in found and f"carried out as {FIRST - 1}" in found


def test_our_record_of_a_paid_and_released_milestone_agrees_with_the_provider(
    session: Session,
) -> None:
    contract_id = paid_contract(session)
    key, mid = fund_key(session, contract_id), milestone_row(session, contract_id).id
    _approved(session, contract_id)
    link_payout_account(session, FREELANCER, "acct_free", ready=True, webhook="evt_a1")
    [claimed] = claim(session, APPROVED)
    payments.movement_sent(session, claimed.id, ref="tr_1", now=APPROVED)

    [ours] = payments.records_to_reconcile(session)

    assert ours == Ours(
        contract_id=contract_id,
        currency="USD",
        payments=((key, "pi_fund", FIRST),),
        movements=((f"release:{mid}", "release", FIRST, "sent"),),
    )
    theirs = [
        Theirs("pi_fund", "payment", key, FIRST, "USD"),
        Theirs("tr_1", "transfer", f"release:{mid}", FIRST, "USD"),
    ]
    assert differences(ours, theirs) == []
    assert differences(ours, theirs[:1]) != []


def test_only_refunds_of_our_own_movements_count_as_made_by_us(session: Session) -> None:
    contract_id = paid_contract(session)
    _contract_ended(session, contract_id)  # the end refunds the milestone: our movement
    [refund] = [m.key for m in movements_of(session, contract_id) if m.kind == LedgerKind.REFUND]

    assert pay.made_by_us(session, [refund])
    assert not pay.made_by_us(session, [refund, "refund:999"])  # one made elsewhere
    assert not pay.made_by_us(session, [refund, None])  # one without our metadata
    assert not pay.made_by_us(session, [])  # a charge that lists no refunds
