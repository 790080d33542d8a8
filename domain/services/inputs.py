"""What the use cases take and give: the changes a person asks for, and the outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from domain.text import Said, said


@dataclass(frozen=True)
class NewMilestone:
    title: str
    amount: str
    due_date: date
    description: str = ""


@dataclass(frozen=True)
class MilestoneEdit:
    number: int
    title: str | None = None
    description: str | None = None
    amount: str | None = None
    due_date: date | None = None


@dataclass(frozen=True)
class MilestoneDeletion:
    number: int


ChangeInput = NewMilestone | MilestoneEdit | MilestoneDeletion


@dataclass(frozen=True)
class Agency:
    name: str
    manager_ids: Sequence[str]
    member_ids: Sequence[str] = ()


@dataclass(frozen=True)
class Outcome:
    """What a service did, for the caller to confirm to the person who acted."""

    contract_id: int
    said: Said  # what to tell the person who acted
    already_done: bool = False
    milestone_number: int | None = None
    request_id: int | None = None
    request_number: int | None = None
    became_request: bool = False
    contract_activated: bool = False
    # Through a payments provider: the secret of the pay link the actor is given.
    pay_token: str | None = None
    outbox_ids: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.said, str):  # plain words
            object.__setattr__(self, "said", said(self.said))

    @property
    def summary(self) -> str:
        """What was said, in plain words (people as @ids)."""
        return str(self.said)
