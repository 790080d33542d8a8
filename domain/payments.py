"""The payments port: the domain decides *that* money moves, a provider carries it out.

Every movement of money is first a ledger entry (`domain/ledger.py`): a fund, a top-up
after an accepted increase, a release (by approval, automatically, in part, or by a
dispute's split), a refund on ending, a bonus. The entry's unique key
(`fund:<milestone>`, `release:<milestone>`, …) is also the movement's idempotency key,
so a provider asked twice for the same movement carries it out once.

Which provider carries movements out is `PAYMENTS`:

- `ledger` (the default, `RecordOnly`): nobody. The bot keeps the record and the
  parties move the money themselves — and every surface says so (`FUNDED_NOTE`,
  `RELEASED_NOTE`, `REFUNDED_NOTE`, `RECORD_ONLY_NOTE`), so a record is never
  mistaken for money held in escrow.
- `stripe` (Stripe Connect, separate charges and transfers, `payments/stripe_connect.py`):
  a fund is a payment the client makes through a checkout link
  (domain/services/payments.py); a release or refund of what they paid is a
  `ProviderMovement`, written in the transaction that writes its ledger entry
  (`queue_movements`) and carried out by the payments sender (bot/payments.py) under
  the entry's key, retried with backoff while the provider is down.

This module imports no provider library: an adapter lives in its own room and
implements `PaymentsProvider`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session

from domain.db import read_transaction, write_transaction
from domain.model import (
    Contract,
    LedgerEntry,
    LedgerKind,
    Milestone,
    MovementState,
    Party,
    PaymentState,
    PayoutAccount,
    ProviderMovement,
    ProviderPayment,
)
from domain.policy import Policy
from domain.states import Role


class PaymentsMode(StrEnum):
    LEDGER = "ledger"  # record-keeping only: the parties move the money themselves
    STRIPE = "stripe"  # Stripe Connect carries each movement out


class Direction(StrEnum):
    """Where a movement takes money, seen from the contract's escrow."""

    INTO_ESCROW = "into_escrow"  # the client pays (fund, top-up)
    TO_PROVIDER = "to_provider"  # out of escrow to the provider side (release)
    TO_CLIENT = "to_client"  # out of escrow back to the client (refund)
    DIRECT_TO_PROVIDER = "direct_to_provider"  # the client pays the provider (bonus)


DIRECTIONS: dict[LedgerKind, Direction] = {
    LedgerKind.FUND: Direction.INTO_ESCROW,
    LedgerKind.TOP_UP: Direction.INTO_ESCROW,
    LedgerKind.RELEASE: Direction.TO_PROVIDER,
    LedgerKind.REFUND: Direction.TO_CLIENT,
    LedgerKind.BONUS: Direction.DIRECT_TO_PROVIDER,
}


@dataclass(frozen=True)
class Movement:
    """One movement of money the domain decided, as a provider needs it: amounts in
    ISO minor units of the contract's currency, straight from the ledger."""

    key: str  # the ledger entry's unique key: the provider's idempotency key
    kind: LedgerKind
    contract_id: int
    milestone_id: int | None
    amount_minor: int
    currency: str
    # Where a release or bonus goes: the provider side's payout account at the provider.
    destination: str | None = None
    # What a refund gives back: the provider's payments that funded the milestone.
    paid_with: tuple[str, ...] = ()
    # The provider's idempotency key: the ledger key and a random part fixed when the
    # movement was queued, so a retry is the same request and another database's
    # `release:1` (staging on the same Stripe account, a reset) never is.
    idempotency_key: str | None = None

    @property
    def once(self) -> str:
        return self.idempotency_key or self.key

    @property
    def direction(self) -> Direction:
        return DIRECTIONS[self.kind]

    @property
    def group(self) -> str:
        """The contract's movements belong together (Stripe's `transfer_group`)."""
        return f"contract-{self.contract_id}"


def movement_of(
    entry: LedgerEntry,
    *,
    currency: str,
    destination: str | None = None,
    paid_with: tuple[str, ...] = (),
) -> Movement:
    """The movement a ledger entry records."""
    return Movement(
        key=entry.key,
        kind=entry.kind,
        contract_id=entry.contract_id,
        milestone_id=entry.milestone_id,
        amount_minor=entry.amount_minor,
        currency=currency.upper(),
        destination=destination,
        paid_with=paid_with,
    )


class ProviderUnavailable(Exception):
    """The provider could not be reached or asked us to wait: try the same movement
    again later (its idempotency key makes the retry safe)."""


class ProviderRefused(Exception):
    """The provider refused the movement as asked: retrying it unchanged will not help."""


class PaymentsProvider(Protocol):
    """Carries out the movements the ledger records."""

    @property
    def mode(self) -> PaymentsMode: ...

    @property
    def moves_money(self) -> bool:
        """False when the bot only keeps the record (the parties pay each other)."""
        ...

    def carry_out(self, movement: Movement) -> str | None:
        """Move the money and say the provider's id for it (None: nothing moved);
        asked again with the same `movement.key`, move it once. Raises
        `ProviderUnavailable` (retry later) or `ProviderRefused`."""
        ...


class RecordOnly:
    """`PAYMENTS=ledger`: the ledger is the whole story; no money moves through the bot."""

    @property
    def mode(self) -> PaymentsMode:
        return PaymentsMode.LEDGER

    @property
    def moves_money(self) -> bool:
        return False

    def carry_out(self, movement: Movement) -> str | None:
        """Nothing to do: the entry is the record, and the parties pay each other."""
        return None


RECORD_ONLY = RecordOnly()

# ----- what every surface says with `PAYMENTS=ledger` (facts, not markup)

#: On the contract card, the help and the fund confirmation.
RECORD_ONLY_NOTE = (
    "The bot keeps the record only: it holds no money. Move the money yourselves "
    "(bank transfer, invoice, your own escrow) when the record says so."
)
#: After a fund or a top-up.
FUNDED_NOTE = "Recorded as funded — move the money yourselves."
#: After a release, a partial release or a bonus.
RELEASED_NOTE = "Recorded as paid — the client pays the provider directly."
#: After a refund.
REFUNDED_NOTE = "Recorded as refunded — settle it between yourselves."
#: After a dispute's split.
SPLIT_NOTE = "Recorded as settled — the client pays the provider's share directly."
#: The same moments with `PAYMENTS=stripe`: Stripe moves the money.
PROVIDER_NOTES = {
    FUNDED_NOTE: "The client pays it through Stripe: their link is in `/milestone fund`.",
    RELEASED_NOTE: "Stripe transfers it to the provider side's payout account.",
    REFUNDED_NOTE: "Stripe refunds it to the client's payment.",
    SPLIT_NOTE: "Stripe transfers the provider's share and refunds the rest to the client.",
}


def money_note(note: str, policy: Policy) -> str:
    """What a reply says about money that moved: a record (`PAYMENTS=ledger`), or what
    Stripe does with it (`PAYMENTS=stripe`)."""
    return PROVIDER_NOTES.get(note, note) if policy.pay_through_provider else note


#: `/milestone payouts`: there is no payout account to link.
PAYOUTS_NOTE = (
    "There is no payout account to link: the bot keeps the record only and holds no money. "
    "The client pays you directly (bank transfer, invoice, your own escrow) when the record "
    "says a milestone is funded or paid."
)


# ----- movements of provider-held money: the payments outbox -------------------------------

#: Where `ledger.record` lists the entries a transaction wrote, for `queue_movements`.
WRITTEN = "ledger_written"
#: How long a release waits before it looks again for the provider side's payout account.
NO_ACCOUNT_WAIT = timedelta(minutes=5)
_OUT = (LedgerKind.RELEASE, LedgerKind.REFUND)


def written(session: Session, entry: LedgerEntry) -> None:
    """`entry` was written in this transaction (called by `ledger.record`)."""
    session.info.setdefault(WRITTEN, []).append(entry)


def queue_movements(session: Session, *, now: datetime) -> None:
    """In the transaction that wrote them: a release or refund of a milestone the client
    paid through the provider becomes a movement to carry out; a top-up of such a
    milestone becomes a payment the client owes. Nothing for record-only contracts."""
    entries: list[LedgerEntry] = session.info.pop(WRITTEN, [])
    wanted = [  # not those of a transaction that was rolled back
        e for e in entries if inspect(e).persistent and e.kind in (*_OUT, LedgerKind.TOP_UP)
    ]
    if not wanted:
        return
    for entry in wanted:
        # Loaded with its contract already: no statement for a record-only milestone.
        milestone = session.get(Milestone, entry.milestone_id)
        if milestone is None or not milestone.paid_through_provider:
            continue
        if entry.kind == LedgerKind.TOP_UP:
            contract = session.get(Contract, entry.contract_id)
            assert contract is not None
            session.add(
                ProviderPayment(
                    contract_id=entry.contract_id,
                    milestone_id=entry.milestone_id,
                    ledger_key=entry.key,
                    kind=LedgerKind.TOP_UP,
                    amount_minor=entry.amount_minor,
                    currency=contract.currency,
                    asked_by=entry.actor,
                    token=secrets.token_urlsafe(32),
                    attempt=1,
                    state=PaymentState.PENDING,
                    created_at=now,
                )
            )
            continue
        amount = entry.amount_minor
        if entry.kind == LedgerKind.REFUND:
            # A top-up the client never paid is no longer owed, and is not given back.
            amount -= _cancel_owed_top_ups(session, entry.milestone_id)
            if amount <= 0:
                continue
        session.add(
            ProviderMovement(
                ledger_entry_id=entry.id,
                contract_id=entry.contract_id,
                milestone_id=entry.milestone_id,
                key=entry.key,
                idempotency_key=once(entry.key),
                kind=entry.kind,
                amount_minor=amount,
                state=MovementState.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    session.flush()


def once(key: str) -> str:
    """A movement's idempotency key at the provider (see `Movement.idempotency_key`)."""
    return f"{key}:{secrets.token_hex(6)}"


def _cancel_owed_top_ups(session: Session, milestone_id: int | None) -> int:
    """The milestone's escrow goes back: top-ups still owed for it are cancelled; their
    total (recorded in the ledger, never paid)."""
    owed = list(
        session.scalars(
            select(ProviderPayment).where(
                ProviderPayment.milestone_id == milestone_id,
                ProviderPayment.kind == LedgerKind.TOP_UP,
                ProviderPayment.state.in_((PaymentState.PENDING, PaymentState.FAILED)),
            )
        )
    )
    for payment in owed:
        payment.state = PaymentState.CANCELLED
        payment.note = "no longer owed: the milestone's escrow went back to the client"
    return sum(p.amount_minor for p in owed)


@dataclass(frozen=True)
class Claimed:
    """A movement claimed for one try, with what the provider needs (`movement`
    is None while it cannot go yet; `waiting` says why)."""

    id: int
    attempts: int  # counting this one
    movement: Movement | None
    waiting: str | None = None


def claim_movements(
    session: Session, *, now: datetime, lease: timedelta, limit: int = 20
) -> list[Claimed]:
    """Claim up to `limit` due movements for `lease` (another sender may take them over
    after it); rows another sender holds are skipped (PostgreSQL)."""
    with write_transaction(session, durable=False):
        rows = list(
            session.scalars(
                select(ProviderMovement)
                .where(
                    ProviderMovement.state == MovementState.PENDING,
                    ProviderMovement.next_attempt_at <= now,
                )
                .order_by(ProviderMovement.next_attempt_at, ProviderMovement.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        claims = []
        for row in rows:
            row.next_attempt_at = now + lease
            row.attempts += 1
            claims.append(_claimed(session, row))
        return claims


def _claimed(session: Session, row: ProviderMovement) -> Claimed:
    contract = session.get(Contract, row.contract_id)
    assert contract is not None
    payments = list(
        session.scalars(
            select(ProviderPayment)
            .where(ProviderPayment.milestone_id == row.milestone_id)
            .order_by(ProviderPayment.id)
        )
    )
    owed = [p for p in payments if p.state in (PaymentState.PENDING, PaymentState.FAILED)]
    if row.kind == LedgerKind.RELEASE and any(p.kind == LedgerKind.TOP_UP for p in owed):
        return Claimed(row.id, row.attempts, None, "waiting for the client's top-up payment")
    destination = None
    if row.kind == LedgerKind.RELEASE:
        destination = session.scalar(
            select(PayoutAccount.account_id)
            .join(Party, Party.user_id == PayoutAccount.user_id)
            .where(
                Party.contract_id == row.contract_id,
                Party.role.in_((Role.FREELANCER, Role.MANAGER)),
                PayoutAccount.ready.is_(True),
                PayoutAccount.account_id.is_not(None),
            )
            .order_by(Party.id)
            .limit(1)
        )
        if destination is None:
            return Claimed(
                row.id,
                row.attempts,
                None,
                "waiting for the provider side to link a payout account (/milestone payouts)",
            )
    if row.refund_of is not None:  # giving back a payment nothing could take
        paid_with: tuple[str, ...] = (row.refund_of,)
    else:
        paid_with = tuple(
            p.payment_intent for p in payments if p.payment_intent and p.state == PaymentState.PAID
        )
    movement = Movement(
        key=row.key,
        kind=row.kind,
        contract_id=row.contract_id,
        milestone_id=row.milestone_id,
        amount_minor=row.amount_minor,
        currency=contract.currency,
        destination=destination,
        paid_with=paid_with,
        idempotency_key=row.idempotency_key,
    )
    return Claimed(row.id, row.attempts, movement)


def movement_sent(session: Session, movement_id: int, *, ref: str | None, now: datetime) -> None:
    with write_transaction(session):
        session.execute(
            update(ProviderMovement)
            .where(
                ProviderMovement.id == movement_id,
                ProviderMovement.state == MovementState.PENDING,
            )
            .values(state=MovementState.SENT, provider_ref=ref, sent_at=now, last_error=None)
            .execution_options(synchronize_session=False)
        )


def movement_later(
    session: Session, movement_id: int, *, at: datetime, reason: str, counted: bool = True
) -> None:
    """Try again at `at` (`counted=False`: it could not be tried, the try does not count)."""
    values: dict[str, object] = {"next_attempt_at": at, "last_error": reason[:2000]}
    if not counted:
        values["attempts"] = ProviderMovement.attempts - 1
    with write_transaction(session, durable=False):
        session.execute(
            update(ProviderMovement)
            .where(
                ProviderMovement.id == movement_id,
                ProviderMovement.state == MovementState.PENDING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def movement_refused(session: Session, movement_id: int, *, reason: str) -> None:
    """The provider refused it as asked: it stays failed until an operator looks
    (`payments reconcile` lists it)."""
    with write_transaction(session):
        session.execute(
            update(ProviderMovement)
            .where(
                ProviderMovement.id == movement_id,
                ProviderMovement.state == MovementState.PENDING,
            )
            .values(state=MovementState.FAILED, last_error=reason[:2000])
            .execution_options(synchronize_session=False)
        )


def wake_movements_of(session: Session, user_id: str, *, now: datetime) -> None:
    """A payout account became ready: releases waiting for it are due now (in the
    caller's transaction)."""
    contracts = select(Party.contract_id).where(Party.user_id == user_id)
    session.execute(
        update(ProviderMovement)
        .where(
            ProviderMovement.state == MovementState.PENDING,
            ProviderMovement.contract_id.in_(contracts),
            ProviderMovement.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )


def next_movement_due(session: Session) -> datetime | None:
    with read_transaction(session):
        return session.scalar(
            select(ProviderMovement.next_attempt_at)
            .where(ProviderMovement.state == MovementState.PENDING)
            .order_by(ProviderMovement.next_attempt_at)
            .limit(1)
        )


# ----- reconcile: our record against the provider's objects -------------------------------


@dataclass(frozen=True)
class Theirs:
    """A provider object that moved money, as reconcile compares it (any adapter)."""

    id: str
    kind: str  # "payment", "transfer", "refund"
    ledger_key: str | None
    amount_minor: int
    currency: str
    reversed_minor: int = 0


@dataclass(frozen=True)
class Ours:
    """What our record says a contract's money at the provider should be."""

    contract_id: int
    currency: str
    payments: tuple[tuple[str, str, int], ...]  # (ledger key, payment intent, amount) paid
    movements: tuple[tuple[str, str, int, str], ...]  # (key, kind, amount, state)
    given_back: tuple[str, ...] = ()  # payments refunded as nothing could take them

    @property
    def intents(self) -> tuple[str, ...]:
        """Every provider payment to look at, with its refunds."""
        return tuple(dict.fromkeys([pi for _, pi, _ in self.payments] + list(self.given_back)))


def records_to_reconcile(session: Session) -> list[Ours]:
    """Every contract with money at the provider, as our record has it."""
    with read_transaction(session):
        contract_ids = sorted(set(session.scalars(select(ProviderPayment.contract_id).distinct())))
        found = []
        for contract_id in contract_ids:
            contract = session.get(Contract, contract_id)
            assert contract is not None
            paid = session.execute(
                select(
                    ProviderPayment.ledger_key,
                    ProviderPayment.payment_intent,
                    ProviderPayment.amount_minor,
                ).where(
                    ProviderPayment.contract_id == contract_id,
                    ProviderPayment.payment_intent.is_not(None),
                    ProviderPayment.state.in_((PaymentState.PAID, PaymentState.REVERSED)),
                )
            ).all()
            moved = session.execute(
                select(
                    ProviderMovement.key,
                    ProviderMovement.kind,
                    ProviderMovement.amount_minor,
                    ProviderMovement.state,
                ).where(ProviderMovement.contract_id == contract_id)
            ).all()
            given_back = session.scalars(
                select(ProviderMovement.refund_of).where(
                    ProviderMovement.contract_id == contract_id,
                    ProviderMovement.refund_of.is_not(None),
                )
            ).all()
            found.append(
                Ours(
                    contract_id=contract_id,
                    currency=contract.currency,
                    payments=tuple((str(k), str(pi), int(a)) for k, pi, a in paid),
                    movements=tuple((str(k), str(kd), int(a), str(st)) for k, kd, a, st in moved),
                    given_back=tuple(str(pi) for pi in given_back),
                )
            )
        return found


def differences(ours: Ours, theirs: Sequence[Theirs]) -> list[str]:
    """Each way the provider's objects differ from our record of the contract (none:
    they agree). A movement still pending is expected to be missing."""
    found: list[str] = []
    prefix = f"contract {ours.contract_id}"
    by_id = {t.id: t for t in theirs}
    for key, payment_intent, amount in ours.payments:
        payment = by_id.get(payment_intent)
        if payment is None:
            found.append(f"{prefix}: {key} was paid by {payment_intent}, which the provider lacks")
        elif payment.amount_minor != amount or payment.currency != ours.currency:
            found.append(
                f"{prefix}: {key} was paid {amount} {ours.currency}, the provider received "
                f"{payment.amount_minor} {payment.currency} ({payment_intent})"
            )
    moved: dict[str, int] = {}
    for t in theirs:
        if t.kind in ("transfer", "refund") and t.ledger_key:
            base = t.ledger_key
            moved[base] = moved.get(base, 0) + t.amount_minor - t.reversed_minor
    ours_keys = set()
    for key, kind, amount, state in ours.movements:
        ours_keys.add(key)
        got = moved.get(key, 0)
        if state == MovementState.SENT and got != amount:
            found.append(f"{prefix}: {kind} {key} of {amount} was carried out as {got}")
        elif state == MovementState.FAILED:
            found.append(f"{prefix}: {kind} {key} of {amount} was refused by the provider")
        elif state == MovementState.PENDING and got not in (0, amount):
            found.append(f"{prefix}: {kind} {key} of {amount} is pending but {got} moved")
    for t in theirs:
        if t.kind == "refund" and not t.ledger_key:
            found.append(
                f"{prefix}: refund {t.id} of {t.amount_minor} {t.currency} was not made by the bot"
            )
    for key, got in sorted(moved.items()):
        if key not in ours_keys and got:
            found.append(f"{prefix}: the provider moved {got} under {key}, which we never asked")
    return found
