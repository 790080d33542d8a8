"""Reading disputes: the one a card shows, the one a form is about, the open ones for an
operator. Everything here only reads; domain/services/disputes.py changes them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import queries, rules
from domain.errors import InvalidTransition, NotFound, WrongPhase
from domain.model import Contract, ContractStatus, Dispute, Milestone, MilestoneStatus, Role
from domain.rules import Act

# "0", "0.00", "$0", "0 USD": nothing to the provider (everything back to the client).
_ZERO = re.compile(r"[^\d\-\u2212]*0+(?:[.,]0*)?[^\d\-\u2212]*")


def is_zero_amount(text: str) -> bool:
    """An amount typed as zero, which a split allows (everything goes back)."""
    return _ZERO.fullmatch(text.strip()) is not None


class DisputeSide:
    CLIENT = "client"
    PROVIDER = "provider"


def side_of(contract: Contract, user_id: str) -> str:
    """Which side `user_id` speaks for in a dispute ("client" or "provider")."""
    return DisputeSide.CLIENT if contract.role_of(user_id) == Role.CLIENT else DisputeSide.PROVIDER


def dispute_of(session: Session, milestone_id: int) -> Dispute | None:
    return session.scalar(
        select(Dispute)
        .where(Dispute.milestone_id == milestone_id)
        .execution_options(populate_existing=True)
    )


def load_dispute(session: Session, dispute_id: int) -> Dispute:
    dispute = session.get(Dispute, dispute_id, populate_existing=True)
    if dispute is None:
        raise NotFound(f"There is no dispute {dispute_id}.")
    return dispute


def disputable_milestone(
    session: Session, *, contract_id: int, milestone_id: int, actor_id: str
) -> tuple[Contract, Milestone]:
    """The milestone a person is about to dispute in a form, checked up front (so nobody
    writes a reason only to be refused): submitted work for the client, the funded
    milestone of an ending contract for the provider side."""
    contract = queries.load_contract(session, contract_id)
    role = rules.require(contract, actor_id, Act.DISPUTE)
    milestone = next((m for m in contract.milestones if m.id == milestone_id), None)
    if milestone is None:
        raise NotFound(f"That milestone is not part of contract {contract.id}.")
    if milestone.status == MilestoneStatus.DISPUTED:
        raise InvalidTransition(f"Milestone {milestone.number} is already disputed.")
    if role == Role.CLIENT:
        if (
            contract.status != ContractStatus.ACTIVE
            or milestone.status != MilestoneStatus.SUBMITTED
        ):
            raise InvalidTransition("That submission is no longer waiting for review.")
    elif contract.status != ContractStatus.ENDING or milestone.status != MilestoneStatus.FUNDED:
        raise WrongPhase("There is no refund to dispute: the contract is not ending.")
    return contract, milestone


@dataclass(frozen=True)
class OpenDispute:
    """An open dispute, for an operator (`milestone-bot dispute list`)."""

    contract_id: int
    contract_title: str
    currency: str
    contract_status: str
    milestone_number: int
    milestone_title: str
    held_minor: int
    opened_by: str
    opened_at: datetime
    reason: str
    proposed_by: str | None
    proposed_to_provider_minor: int | None


def open_disputes(session: Session) -> list[OpenDispute]:
    rows = session.execute(
        select(Dispute, Contract, Milestone)
        .join(Contract, Contract.id == Dispute.contract_id)
        .join(Milestone, Milestone.id == Dispute.milestone_id)
        .where(Dispute.settled_at.is_(None))
        .order_by(Dispute.opened_at, Dispute.id)
    ).all()
    return [
        OpenDispute(
            contract_id=contract.id,
            contract_title=contract.title,
            currency=contract.currency,
            contract_status=contract.status.value,
            milestone_number=milestone.number,
            milestone_title=milestone.title,
            held_minor=dispute.held_minor,
            opened_by=dispute.opened_by,
            opened_at=dispute.opened_at,
            reason=dispute.reason,
            proposed_by=dispute.proposed_by,
            proposed_to_provider_minor=dispute.proposed_to_provider_minor,
        )
        for dispute, contract, milestone in rows
    ]
