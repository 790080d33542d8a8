"""Checking what people typed, and whether a change can apply to the contract as it
stands. Every refusal names the input it is about (`field`) and, for a milestone's
change, the milestone (`milestone`), so a form shows it next to that input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from domain.errors import (
    InvalidAmount,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    MilestoneLocked,
)
from domain.model import ChangeKind, Contract, MilestoneStatus
from domain.money import format_amount, parse_amount
from domain.policy import MAX_MILESTONES, MAX_TEXT, MAX_TITLE, Policy
from domain.services._locking import milestone_numbered
from domain.services.inputs import ChangeInput, MilestoneEdit, NewMilestone
from domain.when import example_due, latest_due


def clean_text(
    value: str, *, what: str, limit: int, required: bool, milestone: int | None = None
) -> str:
    """A text someone typed, trimmed; `what` names it (and its field) in a refusal."""
    # NUL can't be stored in PostgreSQL text (and shows nothing): drop it.
    text = value.replace("\x00", "").strip()
    field = what.replace(" ", "_")
    if required and not text:
        raise InvalidInput(f"The {what} can't be empty.", field=field, milestone=milestone)
    if len(text) > limit:
        raise LimitExceeded(
            f"The {what} is {len(text):,} characters long; the limit is {limit:,}.",
            field=field,
            milestone=milestone,
        )
    return text


def check_due_date(due: date, now: datetime, *, milestone: int | None = None) -> date:
    """`due` if it can be a due date; a refusal shows a valid one, computed from today."""
    # A calendar date: allow "today" anywhere on Earth (UTC−12 is a day behind).
    today = now.date()
    earliest = (now - timedelta(days=1)).date()
    example = example_due(today).isoformat()
    if due < earliest:
        raise InvalidInput(
            f"The due date {due.isoformat()} is in the past. Give a day from today on, "
            f"such as {example}.",
            field="due_date",
            milestone=milestone,
        )
    latest = latest_due(today)
    if due > latest:
        raise InvalidInput(
            f"The due date {due.isoformat()} is too far in the future: the latest due date "
            f"is {latest.isoformat()}. Give a nearer day, such as {example}.",
            field="due_date",
            milestone=milestone,
        )
    return due


def read_amount(
    contract: Contract, text: str, policy: Policy, *, milestone: int | None = None
) -> int:
    try:
        return parse_amount(text, contract.currency, max_major=policy.max_amount_major)
    except InvalidAmount as refusal:
        raise InvalidAmount(refusal.said, field="amount_minor", milestone=milestone) from None


def money(contract: Contract, amount_minor: int) -> str:
    return format_amount(amount_minor, contract.currency)


@dataclass(frozen=True)
class ValidChange:
    """A validated change, in the milestone's own keys (export form)."""

    kind: ChangeKind
    number: int | None
    fields: dict[str, Any]


def validate_change(
    contract: Contract, change: ChangeInput, *, now: datetime, policy: Policy
) -> ValidChange:
    if isinstance(change, NewMilestone):
        return ValidChange(
            ChangeKind.ADD,
            None,
            {
                "title": clean_text(change.title, what="title", limit=MAX_TITLE, required=True),
                "description": clean_text(
                    change.description, what="description", limit=MAX_TEXT, required=False
                ),
                "amount_minor": read_amount(contract, change.amount, policy),
                "due_date": check_due_date(change.due_date, now).isoformat(),
            },
        )
    if isinstance(change, MilestoneEdit):
        number = change.number
        fields: dict[str, Any] = {}
        if change.title is not None:
            fields["title"] = clean_text(
                change.title, what="title", limit=MAX_TITLE, required=True, milestone=number
            )
        if change.description is not None:
            fields["description"] = clean_text(
                change.description,
                what="description",
                limit=MAX_TEXT,
                required=False,
                milestone=number,
            )
        if change.amount is not None:
            fields["amount_minor"] = read_amount(contract, change.amount, policy, milestone=number)
        if change.due_date is not None:
            fields["due_date"] = check_due_date(change.due_date, now, milestone=number).isoformat()
        if not fields:
            raise InvalidInput(
                f"Say what to change in milestone {number}: title=, amount=, due= or description=.",
                field="title",
                milestone=number,
            )
        return ValidChange(ChangeKind.EDIT, change.number, fields)
    return ValidChange(ChangeKind.DELETE, change.number, {})


def check_applicable(
    contract: Contract, change: ValidChange, *, direct: bool, milestones_added: int = 0
) -> None:
    """Raise if `change` can't be applied to the contract as it stands now."""
    if change.kind == ChangeKind.ADD:
        if len(contract.live_milestones) + milestones_added + 1 > MAX_MILESTONES:
            raise LimitExceeded(
                f"A contract can have at most {MAX_MILESTONES} milestones.", field="title"
            )
        return
    assert change.number is not None
    milestone = milestone_numbered(contract, change.number)
    number = milestone.number
    if milestone.status == MilestoneStatus.DELETED:
        raise InvalidTransition(f"Milestone {number} was deleted.", milestone=number)
    if milestone.status == MilestoneStatus.RELEASED:
        raise InvalidTransition(
            f"Milestone {number} was already released; it can't change any more.",
            milestone=number,
        )
    if milestone.status == MilestoneStatus.DISPUTED:
        raise MilestoneLocked(
            f"Milestone {number} is disputed: its escrow is frozen until the dispute is "
            "settled, and it can't change meanwhile.",
            milestone=number,
        )
    if milestone.refunded_at is not None:
        raise InvalidTransition(
            f"Milestone {number} was refunded when its dispute was settled; it can't "
            "change any more.",
            milestone=number,
        )
    if change.kind == ChangeKind.DELETE:
        if milestone.is_active:
            raise MilestoneLocked(
                f"Milestone {number} is {milestone.status.value}, so it can't be "
                "deleted: escrow is held for it. Ending the contract refunds escrow.",
                field="delete",
                milestone=number,
            )
        return
    # An edit.
    current = milestone.fields()
    if all(current[key] == value for key, value in change.fields.items()):
        raise InvalidInput(
            f"Milestone {number} already has those values.",
            field=next(iter(change.fields)),
            milestone=number,
        )
    if milestone.is_active:
        if direct:
            raise MilestoneLocked(
                f"Milestone {number} is {milestone.status.value} and locked: "
                "it can't be edited directly. The provider side can propose a change "
                "to its title, description, due date or an increase of its amount.",
                field=next(iter(change.fields)),
                milestone=number,
            )
        new_amount = change.fields.get("amount_minor")
        if new_amount is not None and new_amount < milestone.amount_minor:
            raise MilestoneLocked(
                f"The amount of milestone {number} is funded, so it can only "
                f"increase (it is {money(contract, milestone.amount_minor)}).",
                field="amount_minor",
                milestone=number,
            )
