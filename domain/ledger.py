"""The escrow ledger: append-only entries in integer minor units.

Balances are always recomputed from entries. A unique business key per entry
(`fund:<milestone>`, `top_up:<request>:<milestone>`, `release:<milestone>`,
`refund:<milestone>`) makes a second release of one milestone impossible whoever
calls; a release or refund can never take more than is held for the milestone.
A partial release is a release of part of what is held (`release:<milestone>:part:<k>`,
the k-th); the final `release:<milestone>` then releases the rest. A bonus
(`bonus:<contract>:<k>`) belongs to the contract, not to a milestone, and is paid
outside escrow: it never counts in what escrow holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from domain import payments
from domain.model import LedgerEntry, LedgerKind

INFLOWS = (LedgerKind.FUND, LedgerKind.TOP_UP)
OUTFLOWS = (LedgerKind.RELEASE, LedgerKind.REFUND)


class LedgerInvariantError(RuntimeError):
    """A movement would break the ledger (negative escrow, non-positive amount)."""


@dataclass(frozen=True)
class Escrow:
    funded_minor: int = 0  # funds and top-ups
    released_minor: int = 0
    refunded_minor: int = 0
    bonus_minor: int = 0  # paid outside escrow: not part of the balance

    @property
    def balance_minor(self) -> int:
        return self.funded_minor - self.released_minor - self.refunded_minor


def _signed_amount() -> ColumnElement[int]:
    return case(
        (LedgerEntry.kind.in_(INFLOWS), LedgerEntry.amount_minor),
        else_=-LedgerEntry.amount_minor,
    )


def held_for_milestone(session: Session, milestone_id: int) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(_signed_amount()), 0)).where(
            LedgerEntry.milestone_id == milestone_id
        )
    )
    return int(total or 0)


def held_for_milestones(session: Session, milestone_ids: Sequence[int]) -> dict[int, int]:
    """`held_for_milestone` of several milestones, in one query."""
    if not milestone_ids:
        return {}
    rows = session.execute(
        select(LedgerEntry.milestone_id, func.sum(_signed_amount()))
        .where(LedgerEntry.milestone_id.in_(milestone_ids))
        .group_by(LedgerEntry.milestone_id)
    )
    return {
        milestone_id: int(total or 0) for milestone_id, total in rows if milestone_id is not None
    }


def record(
    session: Session,
    *,
    contract_id: int,
    milestone_id: int | None,
    kind: LedgerKind,
    amount_minor: int,
    actor: str,
    at: datetime,
    key: str,
    request_id: int | None = None,
    held_minor: int | None = None,
    flush: bool = True,
) -> LedgerEntry:
    """Append one entry. `held_minor`: what the caller read with `held_for_milestone`
    in this transaction, under the contract's lock (read again when not given).
    `flush=False`: written with the transaction's other rows (a second entry with the
    same key still fails, at the flush)."""
    if amount_minor <= 0:
        raise LedgerInvariantError(f"ledger amounts are positive ({key}: {amount_minor})")
    if (milestone_id is None) != (kind == LedgerKind.BONUS):
        raise LedgerInvariantError(f"{key}: only a bonus is paid outside a milestone's escrow")
    if kind in OUTFLOWS:
        assert milestone_id is not None
        held = held_for_milestone(session, milestone_id) if held_minor is None else held_minor
        if amount_minor > held:
            raise LedgerInvariantError(
                f"{key} would take {amount_minor} but only {held} is held for the milestone"
            )
    entry = LedgerEntry(
        contract_id=contract_id,
        milestone_id=milestone_id,
        kind=kind,
        amount_minor=amount_minor,
        actor=actor,
        at=at,
        key=key,
        request_id=request_id,
    )
    session.add(entry)
    payments.written(session, entry)  # a provider may have to carry it out
    if flush:
        session.flush()  # the unique key fails here, inside the caller's transaction
    return entry


def entries(session: Session, contract_id: int) -> list[LedgerEntry]:
    return list(
        session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.contract_id == contract_id)
            .order_by(LedgerEntry.id)
        )
    )


def escrow_of(session: Session, contract_id: int) -> Escrow:
    return summarize(entries(session, contract_id))


def summarize(items: list[LedgerEntry]) -> Escrow:
    funded = sum(e.amount_minor for e in items if e.kind in INFLOWS)
    released = sum(e.amount_minor for e in items if e.kind == LedgerKind.RELEASE)
    refunded = sum(e.amount_minor for e in items if e.kind == LedgerKind.REFUND)
    bonus = sum(e.amount_minor for e in items if e.kind == LedgerKind.BONUS)
    return Escrow(
        funded_minor=funded, released_minor=released, refunded_minor=refunded, bonus_minor=bonus
    )


def partial_release_key(milestone_id: int, k: int) -> str:
    """The key of the k-th partial release of a milestone (from 1)."""
    return f"release:{milestone_id}:part:{k}"


def is_partial_release(entry: LedgerEntry) -> bool:
    """A release of part of what is held, before the milestone's final release."""
    return entry.kind == LedgerKind.RELEASE and ":part:" in entry.key


def partial_releases(session: Session, milestone_id: int) -> int:
    """How many partial releases the milestone has had (read under the contract's lock)."""
    count = session.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(
            LedgerEntry.milestone_id == milestone_id,
            LedgerEntry.kind == LedgerKind.RELEASE,
            LedgerEntry.key.like(f"release:{milestone_id}:part:%"),
        )
    )
    return int(count or 0)


def bonuses(session: Session, contract_id: int) -> int:
    """How many bonuses the contract has paid (read under the contract's lock)."""
    count = session.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.contract_id == contract_id, LedgerEntry.kind == LedgerKind.BONUS)
    )
    return int(count or 0)
