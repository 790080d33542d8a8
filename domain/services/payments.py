"""Money through a payments provider (`PAYMENTS=stripe`): the client is asked to pay
for a milestone, the provider's signed webhooks confirm, fail or reverse the payment,
and the provider side links the account it is paid to.

A fund here does not fund at once: `ask_to_pay` (called by `fund_milestone`) records a
`ProviderPayment` and gives the client a link that is theirs alone; the milestone shows
"payment pending" until `payment_confirmed` — the provider's webhook, applied exactly
once per event id — funds it through the same step a ledger-mode fund takes. Releases
and refunds of provider-held money are carried out by the payments sender
(domain/payments.py: `queue_movements`, `claim_movements`).

A webhook's event id is written in the transaction that applies it (`PaymentWebhook`):
a replay finds it and changes nothing, and the HTTP answer goes only after the commit.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain import payments
from domain.db import read_transaction, write_transaction
from domain.model import (
    SYSTEM_ACTOR,
    Contract,
    ContractStatus,
    LedgerKind,
    Milestone,
    MilestoneStatus,
    MovementState,
    PaymentState,
    PaymentWebhook,
    PayoutAccount,
    ProviderMovement,
    ProviderPayment,
)
from domain.payments import Movement
from domain.policy import DEFAULT_POLICY, Policy
from domain.services._locking import lock_contract, milestone_by_id
from domain.services._steps import freeze_under_dispute, fund_step
from domain.services._validation import money
from domain.services._writes import Tx
from domain.services.inputs import Outcome
from domain.text import said

#: What a person is told about a pay link (it is theirs: it pays for this milestone).
PAY_LINK_NOTE = "The link is yours alone; it opens Stripe's secure checkout."


def _token() -> str:
    return secrets.token_urlsafe(32)


def ask_to_pay(tx: Tx, milestone: Milestone, *, actor_id: str) -> Outcome:
    """The client funds `milestone` through the provider: its payment is asked for (or
    asked again after a failure), and the client gets the link to pay it. Nothing is in
    escrow until the provider confirms the payment (`payment_confirmed`)."""
    session, contract = tx.session, tx.contract
    key = f"fund:{milestone.id}"
    payment = session.scalar(
        select(ProviderPayment).where(ProviderPayment.ledger_key == key).with_for_update()
    )
    if payment is None:
        payment = ProviderPayment(
            contract_id=contract.id,
            milestone_id=milestone.id,
            ledger_key=key,
            kind=LedgerKind.FUND,
            amount_minor=milestone.amount_minor,
            currency=contract.currency,
            asked_by=actor_id,
            token=_token(),
            attempt=1,
            state=PaymentState.PENDING,
            created_at=tx.now,
        )
        session.add(payment)
        tx.changed()  # the cards say "payment pending"
    elif payment.state != PaymentState.PENDING or payment.amount_minor != milestone.amount_minor:
        # Failed, or given back (the milestone changed before it was paid): a new try.
        payment.attempt += 1
        payment.token = _token()
        payment.state = PaymentState.PENDING
        payment.amount_minor = milestone.amount_minor
        payment.asked_by = actor_id
        payment.checkout_session = payment.payment_intent = payment.note = None
        tx.changed()
    session.flush()
    return tx.outcome(
        said(
            f"Pay {money(contract, payment.amount_minor)} for milestone {milestone.number} "
            f"({milestone.title}) to fund it. It is funded, and the provider side told, as "
            f"soon as Stripe confirms the payment. {PAY_LINK_NOTE}"
        ),
        milestone_number=milestone.number,
        pay_token=payment.token,
    )


def pending_top_up(session: Session, contract: Contract) -> ProviderPayment | None:
    """A top-up the client still owes through the provider (an accepted increase of a
    milestone they paid for), if any."""
    return session.scalar(
        select(ProviderPayment)
        .where(
            ProviderPayment.contract_id == contract.id,
            ProviderPayment.kind == LedgerKind.TOP_UP,
            ProviderPayment.state.in_((PaymentState.PENDING, PaymentState.FAILED)),
        )
        .order_by(ProviderPayment.id)
        .limit(1)
    )


def ask_to_pay_top_up(tx: Tx, payment: ProviderPayment, *, actor_id: str) -> Outcome:
    """The client pays a top-up they owe: the link to it (a new one after a failure)."""
    contract = tx.contract
    milestone = milestone_by_id(contract, payment.milestone_id)
    if payment.state == PaymentState.FAILED:
        payment.attempt += 1
        payment.token = _token()
        payment.state = PaymentState.PENDING
        payment.checkout_session = payment.payment_intent = payment.note = None
        tx.changed()
    tx.session.flush()
    return tx.outcome(
        said(
            f"Pay the {money(contract, payment.amount_minor)} top-up of milestone "
            f"{milestone.number} ({milestone.title}) that the accepted increase added. "
            f"Its release waits for it. {PAY_LINK_NOTE}"
        ),
        milestone_number=milestone.number,
        pay_token=payment.token,
    )


# --- what the provider's webhooks say ----------------------------------------------------


@dataclass(frozen=True)
class Received:
    """What a webhook did: `applied` False for a replay or an event that is not ours."""

    applied: bool
    note: str
    outbox_ids: tuple[int, ...] = ()  # what to tell in Slack, once committed


def _first_time(session: Session, webhook_id: str, webhook_type: str, now: datetime) -> bool:
    """Record the event id in this transaction; False when it was already received."""
    if session.get(PaymentWebhook, webhook_id) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(PaymentWebhook(id=webhook_id, type=webhook_type, received_at=now))
            session.flush()
    except IntegrityError:  # another process is applying the same event right now
        return False
    return True


def _payment(
    session: Session, *, ledger_key: str | None, payment_intent: str | None
) -> ProviderPayment | None:
    if ledger_key:
        found = session.scalar(
            select(ProviderPayment).where(ProviderPayment.ledger_key == ledger_key)
        )
        if found is not None:
            return found
    if payment_intent:
        return session.scalar(
            select(ProviderPayment).where(ProviderPayment.payment_intent == payment_intent)
        )
    return None


def payment_confirmed(
    session: Session,
    *,
    webhook_id: str,
    webhook_type: str,
    ledger_key: str | None,
    payment_intent: str | None,
    amount_minor: int | None,
    currency: str | None,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Received:
    """The provider confirms a payment: a fund funds its milestone (through the same step
    as a ledger-mode fund), a top-up is settled. A payment that no longer fits (the
    milestone changed, the contract ended, another payment funded it) is given back."""
    with write_transaction(session):
        if not _first_time(session, webhook_id, webhook_type, now):
            return Received(False, "already received")
        payment = _payment(session, ledger_key=ledger_key, payment_intent=payment_intent)
        if payment is None:
            return _noted(session, webhook_id, "not a payment of ours")
        contract = lock_contract(session, payment.contract_id)
        session.refresh(payment, with_for_update=True)
        tx = Tx(session, contract, now)
        milestone = milestone_by_id(contract, payment.milestone_id)
        paid = amount_minor if amount_minor is not None else payment.amount_minor
        if payment_intent and _given_back(session, payment_intent):
            return _noted(session, webhook_id, f"{payment_intent} was already given back")
        if payment.state == PaymentState.PAID:
            if not payment_intent or payment_intent == payment.payment_intent:
                return _noted(session, webhook_id, f"{payment.ledger_key} was already paid")
            # A second payment for what another one paid already: given back.
            _give_back(session, payment, payment_intent, paid, now)
            told = tx.outcome(
                said(f"Milestone {milestone.number} was paid twice; the second payment goes back.")
            )
            return _noted(session, webhook_id, f"{payment_intent}: paid twice, given back", told)
        misfit = _misfit(contract, milestone, payment, amount_minor, currency)
        if misfit is not None:
            payment.state = PaymentState.RETURNED
            payment.note = misfit
            if payment_intent:
                _give_back(session, payment, payment_intent, paid, now)
            tx.changed()
            told = tx.outcome(
                said(f"Milestone {milestone.number}: the payment goes back, {misfit}.")
            )
            return _noted(session, webhook_id, f"{payment.ledger_key} returned: {misfit}", told)
        payment.payment_intent = payment_intent or payment.payment_intent
        payment.paid_at = now
        payment.state = PaymentState.PAID
        if payment.kind == LedgerKind.FUND:
            milestone.paid_through_provider = True
            fund_step(tx, milestone, actor_id=payment.asked_by, policy=policy)
        tx.changed()
        told = tx.outcome(said(f"Stripe confirmed the payment for milestone {milestone.number}."))
        return _noted(session, webhook_id, f"{payment.ledger_key} paid", told)


def _misfit(
    contract: Contract,
    milestone: Milestone,
    payment: ProviderPayment,
    amount_minor: int | None,
    currency: str | None,
) -> str | None:
    """Why a confirmed payment cannot be taken (None: it can)."""
    if currency is not None and currency.upper() != contract.currency:
        return f"it was paid in {currency.upper()}, not the contract's {contract.currency}"
    if amount_minor is not None and amount_minor != payment.amount_minor:
        return (
            f"it paid {money(contract, amount_minor)}, not the "
            f"{money(contract, payment.amount_minor)} asked for"
        )
    if payment.kind == LedgerKind.TOP_UP:
        # Its ledger entry was written when the increase was accepted; it is owed until
        # the milestone's escrow goes back to the client (then it is cancelled).
        if payment.state == PaymentState.CANCELLED:
            return f"milestone {milestone.number}'s escrow went back to the client"
        return None
    if contract.status != ContractStatus.ACTIVE:
        return f"contract {contract.id} is {contract.status.value}"
    if milestone.status != MilestoneStatus.PENDING or milestone.refunded_at is not None:
        return f"milestone {milestone.number} is {milestone.status.value}"
    if contract.in_progress is not None or contract.next_to_fund is not milestone:
        return f"milestone {milestone.number} is not the next one to fund"
    if milestone.amount_minor != payment.amount_minor:
        return (
            f"milestone {milestone.number} now asks for {money(contract, milestone.amount_minor)}"
        )
    return None


def _given_back(session: Session, payment_intent: str) -> bool:
    return (
        session.scalar(
            select(ProviderMovement.id).where(ProviderMovement.refund_of == payment_intent)
        )
        is not None
    )


def _give_back(
    session: Session, payment: ProviderPayment, payment_intent: str, amount: int, now: datetime
) -> None:
    """A refund of a payment nothing could take (it never was in escrow: no ledger
    entry), as it was paid, carried out by the payments sender like any movement."""
    session.add(
        ProviderMovement(
            ledger_entry_id=None,
            contract_id=payment.contract_id,
            milestone_id=payment.milestone_id,
            key=f"return:{payment_intent}",
            idempotency_key=payments.once(f"return:{payment_intent}"),
            kind=LedgerKind.REFUND,
            amount_minor=amount,
            refund_of=payment_intent,
            state=MovementState.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def payment_failed(
    session: Session,
    *,
    webhook_id: str,
    webhook_type: str,
    ledger_key: str | None,
    payment_intent: str | None,
    reason: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Received:
    """A payment failed: one still pending is marked failed (funding again gives a new
    link); one already paid (a late failure) freezes its milestone."""
    return _payment_went_wrong(
        session,
        webhook_id=webhook_id,
        webhook_type=webhook_type,
        ledger_key=ledger_key,
        payment_intent=payment_intent,
        reason=f"the payment failed ({reason})",
        now=now,
        policy=policy,
        failed=True,
    )


def payment_reversed(
    session: Session,
    *,
    webhook_id: str,
    webhook_type: str,
    payment_intent: str | None,
    reason: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Received:
    """The money of a paid milestone was refunded or disputed outside the bot: the
    milestone is frozen (a dispute opened by the system), and both sides told."""
    return _payment_went_wrong(
        session,
        webhook_id=webhook_id,
        webhook_type=webhook_type,
        ledger_key=None,
        payment_intent=payment_intent,
        reason=reason,
        now=now,
        policy=policy,
        failed=False,
    )


def _payment_went_wrong(
    session: Session,
    *,
    webhook_id: str,
    webhook_type: str,
    ledger_key: str | None,
    payment_intent: str | None,
    reason: str,
    now: datetime,
    policy: Policy,
    failed: bool,
) -> Received:
    with write_transaction(session):
        if not _first_time(session, webhook_id, webhook_type, now):
            return Received(False, "already received")
        payment = _payment(session, ledger_key=ledger_key, payment_intent=payment_intent)
        if payment is None:
            return _noted(session, webhook_id, "not a payment of ours")
        contract = lock_contract(session, payment.contract_id)
        session.refresh(payment, with_for_update=True)
        tx = Tx(session, contract, now)
        milestone = milestone_by_id(contract, payment.milestone_id)
        if payment.state == PaymentState.PENDING and failed:
            payment.state = PaymentState.FAILED
            payment.note = reason
            tx.changed()
            told = tx.outcome(said(f"Milestone {milestone.number}: {reason}."))
            return _noted(session, webhook_id, f"{payment.ledger_key} failed", told)
        if payment.state != PaymentState.PAID:
            return _noted(session, webhook_id, f"{payment.ledger_key} is {payment.state.value}")
        if milestone.status not in (MilestoneStatus.FUNDED, MilestoneStatus.SUBMITTED):
            # Nothing of it is held any more (released, or given back by the bot itself):
            # there is nothing to freeze; `payments reconcile` shows what Stripe did.
            return _noted(session, webhook_id, f"{payment.ledger_key}: {reason}; nothing held")
        payment.state = PaymentState.REVERSED
        payment.note = reason
        # What Stripe held of it is gone: what the dispute settles is a record only.
        milestone.paid_through_provider = False
        freeze_under_dispute(
            tx,
            milestone,
            by=SYSTEM_ACTOR,
            reason=f"Stripe reports that {reason}; the milestone is frozen until "
            "you settle it or an operator decides.",
            policy=policy,
        )
        tx.changed()
        told = tx.outcome(said(f"Milestone {milestone.number} frozen: {reason}."))
        return _noted(session, webhook_id, f"{payment.ledger_key} reversed: {reason}", told)


def _noted(session: Session, webhook_id: str, note: str, told: Outcome | None = None) -> Received:
    row = session.get(PaymentWebhook, webhook_id)
    if row is not None:
        row.outcome = note
    return Received(True, note, told.outbox_ids if told is not None else ())


def event_received(
    session: Session, *, webhook_id: str, webhook_type: str, now: datetime
) -> Received:
    """An event the bot does not act on, recorded so a replay is recognised."""
    with write_transaction(session):
        if not _first_time(session, webhook_id, webhook_type, now):
            return Received(False, "already received")
        return _noted(session, webhook_id, "nothing to do")


# --- the provider side's payout account --------------------------------------------------


@dataclass(frozen=True)
class Payouts:
    """A person's payout account as `/milestone payouts` shows it."""

    token: str  # the onboarding link's secret
    linked: bool  # an account exists at the provider
    ready: bool  # the provider says it can be paid


def payouts_link(session: Session, *, user_id: str, team_id: str | None, now: datetime) -> Payouts:
    """The person's onboarding link (a new one each time: an Account Link is one-time)."""
    with write_transaction(session):
        account = session.scalar(
            select(PayoutAccount).where(PayoutAccount.user_id == user_id).with_for_update()
        )
        if account is None:
            account = PayoutAccount(user_id=user_id, team_id=team_id, ready=False)
            session.add(account)
        account.token = _token()
        account.updated_at = now
        session.flush()
        return Payouts(account.token, account.account_id is not None, account.ready)


def payout_account_by_token(session: Session, token: str) -> PayoutAccount | None:
    return session.scalar(select(PayoutAccount).where(PayoutAccount.token == token))


def record_payout_account(session: Session, *, token: str, account_id: str, now: datetime) -> None:
    """The provider opened the person's account: remember it (idempotent)."""
    with write_transaction(session):
        account = session.scalar(
            select(PayoutAccount).where(PayoutAccount.token == token).with_for_update()
        )
        if account is not None and account.account_id is None:
            account.account_id = account_id
            account.updated_at = now


def account_updated(
    session: Session,
    *,
    webhook_id: str,
    webhook_type: str,
    account_id: str,
    ready: bool,
    now: datetime,
) -> Received:
    """The provider says whether a payout account can be paid: releases waiting for it
    go as soon as it can."""
    with write_transaction(session):
        if not _first_time(session, webhook_id, webhook_type, now):
            return Received(False, "already received")
        account = session.scalar(
            select(PayoutAccount).where(PayoutAccount.account_id == account_id).with_for_update()
        )
        if account is None:
            return _noted(session, webhook_id, "not an account of ours")
        account.ready = ready
        account.updated_at = now
        if ready:
            payments.wake_movements_of(session, account.user_id, now=now)
        return _noted(session, webhook_id, f"{account.user_id}: ready={ready}")


@dataclass(frozen=True)
class ToPay:
    """What a pay link asks the client to pay, as the checkout needs it."""

    state: PaymentState
    note: str | None
    movement: Movement  # the fund or top-up, from our record
    title: str  # what the checkout shows
    once: str  # the checkout's idempotency key: new for each attempt


def to_pay(session: Session, token: str) -> ToPay | None:
    """The payment a pay link names (None: no such link, or an older one)."""
    with read_transaction(session):
        payment = session.scalar(select(ProviderPayment).where(ProviderPayment.token == token))
        if payment is None:
            return None
        milestone = session.get(Milestone, payment.milestone_id)
        assert milestone is not None
        title = f"Milestone {milestone.number}: {milestone.title} (contract {payment.contract_id})"
        return ToPay(
            state=payment.state,
            note=payment.note,
            movement=Movement(
                key=payment.ledger_key,
                kind=payment.kind,
                contract_id=payment.contract_id,
                milestone_id=payment.milestone_id,
                amount_minor=payment.amount_minor,
                currency=payment.currency,
            ),
            title=title if payment.kind == LedgerKind.FUND else f"Top-up of {title}",
            # The link's secret itself never leaves the bot.
            once=f"{payment.ledger_key}:{hashlib.sha256(token.encode()).hexdigest()[:16]}",
        )


def made_by_us(session: Session, refund_keys: Collection[str | None]) -> bool:
    """Whether every one of these refunds (by the ledger key in its metadata) is one of
    our movements: a refund that is not was made outside the bot."""
    if not refund_keys or None in refund_keys:
        return False
    with read_transaction(session):
        known = set(
            session.scalars(
                select(ProviderMovement.key).where(ProviderMovement.key.in_(set(refund_keys)))
            )
        )
    return set(refund_keys) <= known


def record_checkout(session: Session, *, token: str, checkout_session: str) -> None:
    with write_transaction(session):
        payment = session.scalar(
            select(ProviderPayment).where(ProviderPayment.token == token).with_for_update()
        )
        if payment is not None and payment.state == PaymentState.PENDING:
            payment.checkout_session = checkout_session
