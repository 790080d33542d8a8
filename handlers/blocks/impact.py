"""What accepting a change request would do: contract total, escrow top-up, moved dates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from domain.model import ChangeKind, ChangeRequest, Contract, MilestoneStatus


@dataclass(frozen=True)
class Impact:
    total_before: int
    total_after: int
    top_up: int  # deposited into escrow at once on accept (increase of an active milestone)
    top_up_milestones: tuple[int, ...] = ()
    moved_dates: tuple[tuple[int, date | str | None, str], ...] = field(default=())

    @property
    def total_delta(self) -> int:
        return self.total_after - self.total_before


def request_impact(
    contract: Contract,
    request: ChangeRequest,
    *,
    total_before: int | None = None,
    top_up_now: int | None = None,
) -> Impact:
    """The impact of accepting `request` on the contract as it stands now.

    Amounts compare against each milestone's current amount (falling back to the
    change's `before` snapshot when the milestone is unknown). `total_before` defaults
    to `contract.total_minor` (the live milestones); `top_up_now` to the sum of the
    increases of milestones that are funded or submitted now.
    """
    before_total = contract.total_minor if total_before is None else total_before
    delta = 0
    top_up = 0
    top_up_numbers: list[int] = []
    moved: list[tuple[int, date | str | None, str]] = []
    for change in request.changes:
        fields = change.fields or {}
        new_amount = fields.get("amount_minor")
        if change.kind == ChangeKind.ADD:
            if isinstance(new_amount, int):
                delta += new_amount
            continue
        number = change.milestone_number or 0
        milestone = contract.milestone(number)
        snapshot = change.before or {}
        if milestone is not None:
            old_amount: int | None = milestone.amount_minor
            old_due: date | str | None = milestone.due_date
        else:
            raw = snapshot.get("amount_minor")
            old_amount = raw if isinstance(raw, int) else None
            old_due = snapshot.get("due_date")
        if change.kind == ChangeKind.DELETE:
            if old_amount is not None and (
                milestone is None or milestone.status != MilestoneStatus.DELETED
            ):
                delta -= old_amount
            continue
        if isinstance(new_amount, int) and old_amount is not None:
            delta += new_amount - old_amount
            if milestone is not None and milestone.is_active and new_amount > old_amount:
                top_up += new_amount - old_amount
                top_up_numbers.append(number)
        new_due = fields.get("due_date")
        if isinstance(new_due, str):
            old_iso = old_due.isoformat() if isinstance(old_due, date) else old_due
            if new_due != old_iso:
                moved.append((number, old_due, new_due))
    return Impact(
        total_before=before_total,
        total_after=before_total + delta,
        top_up=top_up if top_up_now is None else top_up_now,
        top_up_milestones=tuple(top_up_numbers),
        moved_dates=tuple(moved),
    )
