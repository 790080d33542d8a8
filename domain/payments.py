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
- `stripe` (Stripe Connect, separate charges and transfers): not in this build; the
  processes refuse to start with it (`bot/settings.Settings.require_payments`).

This module imports no provider library: an adapter lives in its own room and
implements `PaymentsProvider`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from domain.model import LedgerEntry, LedgerKind


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
#: `/milestone payouts`: there is no payout account to link.
PAYOUTS_NOTE = (
    "There is no payout account to link: the bot keeps the record only and holds no money. "
    "The client pays you directly (bank transfer, invoice, your own escrow) when the record "
    "says a milestone is funded or paid."
)
