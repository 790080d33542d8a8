"""Typed refusals of the business rules.

Every refusal a person can meet is a `DomainError` subclass named for the business
case. What it says (`said`, domain.text) is written for the person who tried the
action: what is wrong and, where possible, who can act instead or what to do first;
the chat side renders it. Raising one inside a service rolls the transaction back, so
a refusal never changes anything.
"""

from __future__ import annotations

from domain.text import Said, said


class DomainError(Exception):
    """A business rule refused the action."""

    def __init__(
        self, message: Said | str, *, field: str | None = None, milestone: int | None = None
    ) -> None:
        self.said = message if isinstance(message, Said) else said(message)
        self.message = str(self.said)  # plain words, people as @ids (logs, tests)
        super().__init__(self.message)
        # The input the refusal is about (`title`, `amount_minor`, `due_date`, …), if any,
        # and the milestone it concerns (a form listing several shows it at that one).
        self.field = field
        self.milestone = milestone


class InvalidInput(DomainError):
    """A value the user typed is malformed or out of range."""


class InvalidAmount(InvalidInput):
    """An amount that cannot be used: not a number, negative, zero, too precise, too large."""


class InvalidCurrency(InvalidInput):
    """A currency code that is not an ISO 4217 currency."""


class LimitExceeded(InvalidInput):
    """A text too long or a list too large (product.md, Limits)."""


class NotFound(DomainError):
    """The contract, milestone or request named does not exist (in this contract)."""


class ContractChoice(InvalidInput):
    """A command without `contract=` could mean several of the channel's open contracts:
    `choices` are their ids, for the person to pick one (the chat offers buttons; the
    message says to add `contract=<id>`)."""

    def __init__(self, message: Said | str, *, choices: tuple[int, ...]) -> None:
        super().__init__(message)
        self.choices = choices


class NotAParty(DomainError):
    """The actor is not a party to the contract, or not the party who may do this."""


class NotAllowed(DomainError):
    """The actor is a party, but their role may not do this."""


class WrongPhase(DomainError):
    """The contract's phase (negotiating, active, closed) does not allow the action."""


class ContractClosed(WrongPhase):
    """The contract has ended; it is read-only."""


class MilestoneLocked(DomainError):
    """The milestone is funded or submitted and cannot be changed directly."""


class InvalidTransition(DomainError):
    """The milestone, request or contract is not in a state that allows the action."""


class RequestNotPending(InvalidTransition):
    """The change request was already decided, withdrawn or cancelled."""


class RequestPending(DomainError):
    """A pending change request must be answered before the client changes milestones."""


class OutOfOrder(DomainError):
    """Milestones are funded one at a time, in order."""
