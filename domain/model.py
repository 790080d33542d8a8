"""The persistent model: contracts, parties, milestones, change requests, ledger, history.

Typed SQLAlchemy 2 models. Relationships are `lazy="raise"`: every query says what it
loads, so there is no hidden N+1. Timestamps come from the application's clock (the
services pass `now`), never from a database default. Money is integer minor units.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from domain.installation_tables import define_installation_tables
from domain.rules import (
    REQUEST_TARGET,
    ContractAction,
    MilestoneAction,
    RequestAction,
    contract_next,
    milestone_next,
    request_next,
)
from domain.states import ChangeKind as ChangeKind  # the model's vocabulary, re-exported
from domain.states import ContractStatus as ContractStatus
from domain.states import MilestoneStatus as MilestoneStatus
from domain.states import RequestStatus as RequestStatus
from domain.states import Role as Role

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC instant is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class LedgerKind(StrEnum):
    FUND = "fund"
    TOP_UP = "top_up"
    RELEASE = "release"
    REFUND = "refund"
    BONUS = "bonus"  # paid to the provider at once, outside escrow (no milestone)


SYSTEM_ACTOR = "system"


def _enum(enum: type[StrEnum], *, length: int = 16) -> SAEnum:
    """Enums are stored as their string values: readable in SQL, no native enum DDL."""
    return SAEnum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


class Contract(Base):
    __tablename__ = "contract"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[ContractStatus] = mapped_column(_enum(ContractStatus))
    agency_name: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    client_agreed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_agreed_by: Mapped[str | None] = mapped_column(String(32))
    provider_agreed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(32))
    # The client ended it with escrow held: who and when, and until when the provider
    # side may accept the refund or dispute it (None once disputed: no refund by itself).
    ending_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ending_by: Mapped[str | None] = mapped_column(String(32))
    ending_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_milestone_number: Mapped[int] = mapped_column(Integer, default=1)
    next_request_number: Mapped[int] = mapped_column(Integer, default=1)
    # Bumped by every change; lets a renderer tell whether what it shows is current.
    version: Mapped[int] = mapped_column(Integer, default=1)

    parties: Mapped[list[Party]] = relationship(
        back_populates="contract", lazy="raise", order_by="Party.id"
    )
    milestones: Mapped[list[Milestone]] = relationship(
        back_populates="contract", lazy="raise", order_by="Milestone.number"
    )

    __table_args__ = (
        Index("ix_contract_channel_status", "channel_id", "status"),
        # The sweep looks for ending windows that ran out.
        Index(
            "ix_contract_ending_due",
            "ending_deadline_at",
            postgresql_where=text("status = 'ending'"),
            sqlite_where=text("status = 'ending'"),
        ),
    )

    # --- parties -----------------------------------------------------------------
    def role_of(self, user_id: str) -> Role | None:
        for party in self.parties:
            if party.user_id == user_id:
                return party.role
        return None

    def ids_with_role(self, *roles: Role) -> list[str]:
        return [p.user_id for p in self.parties if p.role in roles]

    @property
    def client_id(self) -> str:
        return self.ids_with_role(Role.CLIENT)[0]

    @property
    def freelancer_id(self) -> str | None:
        ids = self.ids_with_role(Role.FREELANCER)
        return ids[0] if ids else None

    @property
    def is_agency(self) -> bool:
        return self.agency_name is not None

    @property
    def provider_ids(self) -> list[str]:
        """Who speaks for the provider side: the freelancer, or the agency's managers."""
        return self.ids_with_role(Role.FREELANCER, Role.MANAGER)

    # --- milestones --------------------------------------------------------------
    def milestone(self, number: int) -> Milestone | None:
        for m in self.milestones:
            if m.number == number:
                return m
        return None

    @property
    def live_milestones(self) -> list[Milestone]:
        return [m for m in self.milestones if m.status != MilestoneStatus.DELETED]

    @property
    def in_progress(self) -> Milestone | None:
        """The one funded, submitted or disputed milestone, if any (milestones are
        sequential)."""
        for m in self.milestones:
            if m.is_active:
                return m
        return None

    @property
    def disputed(self) -> Milestone | None:
        for m in self.milestones:
            if m.status == MilestoneStatus.DISPUTED:
                return m
        return None

    @property
    def next_to_fund(self) -> Milestone | None:
        """The first pending milestone (one refunded after a dispute is settled, not due)."""
        for m in self.milestones:
            if m.status == MilestoneStatus.PENDING and m.refunded_at is None:
                return m
        return None

    @property
    def total_minor(self) -> int:
        return sum(m.amount_minor for m in self.live_milestones)

    # --- transitions (domain/rules.py decides which are allowed) ------------------
    def agree(self, *, role: Role, by: str, at: datetime) -> bool:
        """`by` agrees, for the client or the provider side, to the terms as they stand;
        False if that side had agreed already."""
        if role == Role.CLIENT:
            if self.client_agreed_at is not None:
                return False
            self.client_agreed_at = at
            return True
        if self.provider_agreed_by is not None:
            return False
        self.provider_agreed_by, self.provider_agreed_at = by, at
        return True

    @property
    def both_agreed(self) -> bool:
        return self.client_agreed_at is not None and self.provider_agreed_by is not None

    def clear_agreement(self) -> bool:
        """The terms changed: earlier agreement no longer counts. True if there was any."""
        had = self.client_agreed_at is not None or self.provider_agreed_by is not None
        self.client_agreed_at = self.provider_agreed_by = self.provider_agreed_at = None
        return had

    def activate(self, *, at: datetime) -> None:
        self.status = contract_next(self.status, ContractAction.ACTIVATE)
        self.activated_at = at

    def end(self, *, by: str, at: datetime) -> None:
        self.status = contract_next(self.status, ContractAction.END)
        self.closed_at, self.closed_by = at, by
        self.ending_deadline_at = None

    def begin_ending(self, *, by: str, at: datetime, window: timedelta) -> None:
        """The client ends with escrow held: the provider side has `window` to accept the
        refund or dispute it, or the refund happens by itself."""
        self.status = contract_next(self.status, ContractAction.BEGIN_ENDING)
        self.ending_started_at, self.ending_by = at, by
        self.ending_deadline_at = at + window

    def pause_ending(self) -> None:
        """The refund is disputed: it no longer happens by itself when the window ends."""
        self.ending_deadline_at = None


class Party(Base):
    __tablename__ = "party"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    # The workspace the user belongs to (Slack Connect): recorded beside the id, not part of it.
    team_id: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[Role] = mapped_column(_enum(Role))

    contract: Mapped[Contract] = relationship(back_populates="parties", lazy="raise")

    __table_args__ = (
        UniqueConstraint("contract_id", "user_id"),
        Index("ix_party_user_id", "user_id"),
    )


class Milestone(Base):
    __tablename__ = "milestone"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[MilestoneStatus] = mapped_column(_enum(MilestoneStatus))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    funded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    funded_by: Mapped[str | None] = mapped_column(String(32))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    submitted_by: Mapped[str | None] = mapped_column(String(32))
    submission_note: Mapped[str | None] = mapped_column(Text)
    submission_count: Mapped[int] = mapped_column(Integer, default=0)
    auto_release_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    changes_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    changes_requested_note: Mapped[str | None] = mapped_column(Text)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_by: Mapped[str | None] = mapped_column(String(32))
    released_automatically: Mapped[bool] = mapped_column(Boolean, default=False)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Released to the provider before approval (partial releases); the rest stays held.
    released_early_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # `PAYMENTS=stripe`: its escrow was paid through the provider, so what leaves it is
    # carried out there too (domain.payments.queue_movements).
    paid_through_provider: Mapped[bool] = mapped_column(Boolean, default=False)
    # More time to review: the client's asks this submission, and the one waiting for
    # the provider's answer (days), if any.
    extension_asks: Mapped[int] = mapped_column(Integer, default=0)
    extension_asked_days: Mapped[int | None] = mapped_column(Integer)
    extension_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    contract: Mapped[Contract] = relationship(back_populates="milestones", lazy="raise")

    __table_args__ = (
        UniqueConstraint("contract_id", "number"),
        # The sweep looks for submitted work whose review period has run out.
        Index(
            "ix_milestone_auto_release_due",
            "auto_release_at",
            postgresql_where=text("status = 'submitted'"),
            sqlite_where=text("status = 'submitted'"),
        ),
    )

    # --- transitions (domain/rules.py decides which are allowed) ------------------
    def fund(self, *, by: str, at: datetime) -> None:
        self.status = milestone_next(self.status, MilestoneAction.FUND)
        self.funded_at, self.funded_by = at, by

    def submit(self, *, by: str, at: datetime, note: str, review: timedelta) -> None:
        """Work delivered: the review clock starts (automatic release after `review`)."""
        self.status = milestone_next(self.status, MilestoneAction.SUBMIT)
        self.submitted_at, self.submitted_by = at, by
        self.submission_note = note or None
        self.submission_count += 1
        self.auto_release_at = at + review
        self.extension_asks, self.extension_asked_days, self.extension_asked_at = 0, None, None

    def send_back(self, *, at: datetime, note: str) -> None:
        """The client asks for changes: the review clock stops."""
        self.status = milestone_next(self.status, MilestoneAction.REQUEST_CHANGES)
        self.changes_requested_at, self.changes_requested_note = at, note
        self.auto_release_at = None

    def release(self, *, by: str, at: datetime, automatic: bool) -> None:
        action = MilestoneAction.AUTO_RELEASE if automatic else MilestoneAction.APPROVE
        self.status = milestone_next(self.status, action)
        self.released_at, self.released_by = at, by
        self.released_automatically = automatic

    def release_part(self, amount_minor: int) -> None:
        """Part of the escrow goes to the provider early; the milestone stays in progress."""
        self.status = milestone_next(self.status, MilestoneAction.RELEASE_PART)
        self.released_early_minor = (self.released_early_minor or 0) + amount_minor

    def ask_for_more_time(self, *, days: int, at: datetime) -> None:
        """The client asks for `days` more to review; the date moves only if the provider
        gives them (`extend_review`)."""
        self.status = milestone_next(self.status, MilestoneAction.ASK_FOR_TIME)
        self.extension_asks = (self.extension_asks or 0) + 1
        self.extension_asked_days, self.extension_asked_at = days, at

    def extend_review(self, *, days: int) -> None:
        """The provider gives `days` more to review: the automatic release moves."""
        self.status = milestone_next(self.status, MilestoneAction.EXTEND_REVIEW)
        assert self.auto_release_at is not None
        self.auto_release_at += timedelta(days=days)
        self.extension_asked_days = self.extension_asked_at = None

    def keep_review_date(self) -> None:
        """The provider declines the client's ask for more time."""
        self.status = milestone_next(self.status, MilestoneAction.EXTEND_REVIEW)
        self.extension_asked_days = self.extension_asked_at = None

    @property
    def extension_waiting(self) -> int | None:
        """The days the client asked for, while the provider has not answered."""
        if self.status != MilestoneStatus.SUBMITTED:
            return None
        return self.extension_asked_days

    @property
    def still_held_minor(self) -> int:
        """What escrow holds for it while in progress: its amount less early releases."""
        return self.amount_minor - (self.released_early_minor or 0)

    def refund(self, *, at: datetime) -> None:
        """The contract ended (or a dispute gave it all back): what was held goes back;
        the milestone is no longer funded."""
        self.status = milestone_next(self.status, MilestoneAction.REFUND)
        self.refunded_at = at
        self.auto_release_at = None

    def dispute(self) -> None:
        """Its escrow is frozen: no automatic release, no refund, until it is settled."""
        self.status = milestone_next(self.status, MilestoneAction.DISPUTE)
        self.auto_release_at = None

    def settle(self, *, by: str, at: datetime, refunded: bool) -> None:
        """A dispute ends with money to the provider (and, if `refunded`, the rest back)."""
        self.status = milestone_next(self.status, MilestoneAction.SETTLE)
        self.released_at, self.released_by = at, by
        self.released_automatically = False
        if refunded:
            self.refunded_at = at

    def delete(self, *, at: datetime) -> None:
        self.status = milestone_next(self.status, MilestoneAction.DELETE)
        self.deleted_at = at

    @property
    def is_active(self) -> bool:
        """Funded, submitted or disputed: escrow is held and the milestone is locked."""
        return self.status in (
            MilestoneStatus.FUNDED,
            MilestoneStatus.SUBMITTED,
            MilestoneStatus.DISPUTED,
        )

    def fields(self) -> dict[str, Any]:
        """The editable fields in export form (`due_date` as ISO text)."""
        return {
            "title": self.title,
            "description": self.description,
            "amount_minor": self.amount_minor,
            "due_date": self.due_date.isoformat(),
        }


class Dispute(Base):
    """A milestone's escrow, frozen: the client disputes submitted work, or the provider
    side disputes an end-refund. It ends by a split both sides agree to (either proposes,
    the other agrees; a newer proposal replaces an older one) or by an operator's
    decision with a reason. One per milestone: a settled milestone is final."""

    __tablename__ = "dispute"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    milestone_id: Mapped[int] = mapped_column(
        ForeignKey("milestone.id", ondelete="CASCADE"), unique=True
    )
    opened_by: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    held_minor: Mapped[int] = mapped_column(BigInteger)  # frozen when it was opened
    # The split on the table (to the provider; the rest goes back to the client).
    proposal_number: Mapped[int] = mapped_column(Integer, default=0)
    proposed_by: Mapped[str | None] = mapped_column(String(32))
    proposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    proposed_to_provider_minor: Mapped[int | None] = mapped_column(BigInteger)
    # How it ended: agreed by `settled_by` (to the proposal), or decided by an operator.
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    settled_by: Mapped[str | None] = mapped_column(String(32))
    settled_how: Mapped[str | None] = mapped_column(String(16))  # "agreed" | "operator"
    to_provider_minor: Mapped[int | None] = mapped_column(BigInteger)
    to_client_minor: Mapped[int | None] = mapped_column(BigInteger)
    decision_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_dispute_contract_id", "contract_id"),)

    @property
    def is_open(self) -> bool:
        return self.settled_at is None

    def propose(self, *, by: str, at: datetime, to_provider_minor: int) -> None:
        self.proposal_number = (self.proposal_number or 0) + 1
        self.proposed_by, self.proposed_at = by, at
        self.proposed_to_provider_minor = to_provider_minor

    def close(
        self,
        *,
        by: str,
        at: datetime,
        how: str,
        to_provider_minor: int,
        to_client_minor: int,
        reason: str | None = None,
    ) -> None:
        self.settled_at, self.settled_by, self.settled_how = at, by, how
        self.to_provider_minor, self.to_client_minor = to_provider_minor, to_client_minor
        self.decision_reason = reason


class ChangeRequest(Base):
    __tablename__ = "change_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[RequestStatus] = mapped_column(_enum(RequestStatus))
    proposed_by: Mapped[str] = mapped_column(String(32))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    message: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decline_reason: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    revision_of: Mapped[int | None] = mapped_column(Integer)  # number of the withdrawn request
    counter_of: Mapped[int | None] = mapped_column(Integer)  # number of the request it counters
    # Number of the request that replaced it in one step (a counter-offer or a revision).
    replaced_by: Mapped[int | None] = mapped_column(Integer)

    changes: Mapped[list[Change]] = relationship(
        back_populates="request", lazy="raise", order_by="Change.position"
    )

    def decide(
        self, action: RequestAction, *, by: str | None, at: datetime, reason: str | None = None
    ) -> None:
        """Accept, decline, withdraw (`by` the person) or cancel (by nobody, with the
        `reason` it can no longer apply); only a pending request can be decided."""
        self.status = request_next(self.status, action, self.number)
        self.decided_at = at
        if action == RequestAction.CANCEL:
            self.cancel_reason = reason
            return
        self.decided_by = by
        if action == RequestAction.DECLINE:
            self.decline_reason = reason or None

    def decided_as(self, action: RequestAction, by: str) -> bool:
        """Whether `by` already did `action` to it (a repeat is harmless)."""
        return self.status == REQUEST_TARGET[action] and self.decided_by == by

    def replace_with(self, number: int) -> None:
        """Countered or revised in one step: request `number` took its place."""
        self.replaced_by = number

    __table_args__ = (
        UniqueConstraint("contract_id", "number"),
        Index("ix_change_request_contract_status", "contract_id", "status"),
    )


class Change(Base):
    __tablename__ = "change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("change_request.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[ChangeKind] = mapped_column(_enum(ChangeKind))
    # None for an `add` until it is accepted; then the number the new milestone got.
    milestone_number: Mapped[int | None] = mapped_column(Integer)
    # The proposed values, in the milestone's own keys (export form).
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The milestone's values when the change was proposed, for "before → after".
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    request: Mapped[ChangeRequest] = relationship(back_populates="changes", lazy="raise")

    __table_args__ = (Index("ix_change_request_id", "request_id"),)


class LedgerEntry(Base):
    """An append-only movement of escrow. Never updated, never deleted."""

    __tablename__ = "ledger_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    # None for a contract-level movement (a bonus, paid outside escrow).
    milestone_id: Mapped[int | None] = mapped_column(ForeignKey("milestone.id", ondelete="CASCADE"))
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Unique business key: `release:<milestone id>` can exist once, whoever calls.
    key: Mapped[str] = mapped_column(String(100), unique=True)
    request_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_ledger_entry_contract_id", "contract_id"),
        # What is held for one milestone (every release, refund and top-up asks).
        Index("ix_ledger_entry_milestone_id", "milestone_id"),
    )


class EventKind(StrEnum):
    """What happened to a contract (its history, and the announcements in the channel)."""

    CONTRACT_CREATED = "contract_created"
    MILESTONE_ADDED = "milestone_added"
    MILESTONE_EDITED = "milestone_edited"
    MILESTONE_DELETED = "milestone_deleted"
    AGREEMENT_CLEARED = "agreement_cleared"
    TERMS_AGREED = "terms_agreed"
    CONTRACT_ACTIVATED = "contract_activated"
    REQUEST_PROPOSED = "request_proposed"
    REQUEST_ACCEPTED = "request_accepted"
    REQUEST_DECLINED = "request_declined"
    REQUEST_WITHDRAWN = "request_withdrawn"
    REQUEST_CANCELLED = "request_cancelled"
    REQUEST_COUNTERED = "request_countered"
    ESCROW_TOPPED_UP = "escrow_topped_up"
    MILESTONE_FUNDED = "milestone_funded"
    WORK_SUBMITTED = "work_submitted"
    CHANGES_REQUESTED = "changes_requested"
    MILESTONE_RELEASED = "milestone_released"
    CONTRACT_ENDED = "contract_ended"
    CONTRACT_ENDING = "contract_ending"  # the client ended it: the provider's window
    MILESTONE_DISPUTED = "milestone_disputed"
    SPLIT_PROPOSED = "split_proposed"
    DISPUTE_SETTLED = "dispute_settled"  # by agreement or by an operator
    MILESTONE_PARTLY_RELEASED = "milestone_partly_released"
    BONUS_PAID = "bonus_paid"
    REVIEW_TIME_ASKED = "review_time_asked"
    REVIEW_EXTENDED = "review_extended"
    REVIEW_TIME_DECLINED = "review_time_declined"


class Event(Base):
    """The append-only history: who did what, when, before → after."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(32))
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind, length=40))
    milestone_number: Mapped[int | None] = mapped_column(Integer)
    request_number: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_event_contract_id", "contract_id", "id"),)


class IntentKind(StrEnum):
    """What an outbox intent shows in Slack."""

    CONTRACT_CARD = "contract_card"
    REQUEST_CARD = "request_card"
    WORK_CARD = "work_card"
    ENDING_CARD = "ending_card"  # the ending notice (subject: the contract)
    DISPUTE_CARD = "dispute_card"  # a dispute and its proposed split (subject: the dispute)
    ANNOUNCE = "announce"  # a channel post about an event (subject: the event)
    REMINDER = "reminder"  # a thread reply (subject: the reminder)
    HOME = "home"  # a person's App Home (user_id)
    REPLY = "reply"  # the actor's confirmation (`address`, `body`)
    # Direct messages from the app (user_id), per the person's `Notify` choice:
    DIRECT = "direct"  # something waits for them (`body`: its WaitingKind; subject: its id)
    DIRECT_REMINDER = "direct_reminder"  # a reminder, in their DM (subject: the reminder)
    DIGEST = "digest"  # the weekday-morning list of what waits (subject: the digest)


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"  # gave up; an operator can retry it
    HELD = "held"  # its workspace or channel refuses us for now (see DeliveryHold)


class OutboxMessage(Base):
    """An intent to show something in Slack, written with the change that caused it.

    Only kind and ids are stored: the message is rendered from the state current at
    send time, so a retry never paints an old card over a newer one. A reply is the
    exception: it says what one action did, so its text is stored with it.
    """

    __tablename__ = "outbox_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[IntentKind] = mapped_column(_enum(IntentKind, length=40))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[str | None] = mapped_column(String(32))
    # The workspace and the channel it is shown in: what a DeliveryHold matches.
    team_id: Mapped[str | None] = mapped_column(String(32))
    # The Enterprise Grid org of `team_id`, when the request that wrote the intent named
    # it (None: no Grid, or written by a sweep): with several org-wide installations it
    # picks the right one (bot.installs).
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    # A reply's address (opaque to the domain: the delivery understands it) and text.
    address: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[OutboxState] = mapped_column(_enum(OutboxState), default=OutboxState.PENDING)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_outbox_message_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index(
            "ix_outbox_message_held",
            "team_id",
            "channel_id",
            postgresql_where=text("state = 'held'"),
            sqlite_where=text("state = 'held'"),
        ),
    )


class DeliveryHold(Base):
    """A workspace or channel that refuses our messages for now (a revoked token, an
    archived channel): its intents wait, held, instead of spinning or being dropped,
    and the refusal is checked again at `next_check_at` (with backoff)."""

    __tablename__ = "delivery_hold"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # team:T… / channel:C…
    reason: Mapped[str] = mapped_column(String(100))  # Slack's error code
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    next_check_at: Mapped[datetime] = mapped_column(UTCDateTime())
    checks: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_delivery_hold_next_check_at", "next_check_at"),)


class ChannelSpeaker(Base):
    """Distribution, Slack Connect: the installation whose bot posts in a channel that
    the owning workspace's bot is not a member of (found by asking each installation's
    bot, bot.delivery). One row per such channel, replaced when another one has to take
    over; the cards it posted are updated with its token, as Slack lets only their
    poster edit them."""

    __tablename__ = "channel_speaker"

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The installation: (org, workspace); an org-wide one has no workspace.
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    team_id: Mapped[str | None] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(UTCDateTime())


class HomeViewer(Base):
    """Someone who has opened the app's Home tab: only their Home is kept up to date as
    contracts change (anyone else's is rendered when they first open it)."""

    __tablename__ = "home_viewer"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_opened_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MessageRef(Base):
    """Where a card lives in the chat (channel + message ts), so it is updated in place."""

    __tablename__ = "message_ref"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(60), unique=True)  # e.g. "contract:12"
    channel_id: Mapped[str] = mapped_column(String(32))
    # Empty while a sender holds the reservation (it is posting the message now).
    ts: Mapped[str] = mapped_column(String(32))
    reserved_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RequestReceipt(Base):
    """A processed inbound request (Slack's trigger_id / action_ts): replays do nothing."""

    __tablename__ = "request_receipt"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    # The sweep's housekeeping forgets receipts older than the replay window.
    __table_args__ = (Index("ix_request_receipt_at", "at"),)


class ReminderKind(StrEnum):
    REQUEST = "request"  # an unanswered change request: nudge the client
    REVIEW = "review"  # submitted work: remind the client before automatic release
    FUND = "fund"  # a released milestone with the next waiting: nudge to fund
    OVERDUE = "overdue"  # a funded milestone past its due date: one nudge to both sides
    DISPUTE = "dispute"  # an open dispute: both sides, every few days (subject: milestone)


class ReminderState(StrEnum):
    PENDING = "pending"  # due at `due_at` (or `not_before`)
    SENT = "sent"
    CANCELLED = "cancelled"  # answered before it was due, or no longer relevant
    SKIPPED = "skipped"  # overtaken by a later slot while the bot was down


class Reminder(Base):
    """A nudge that is due at `due_at`, written with the change that started its clock.

    `key` is unique per slot, so a reminder is sent at most once however many sweepers
    run. `not_before` is set when the recipient's working hours push it later.
    """

    __tablename__ = "reminder"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    kind: Mapped[ReminderKind] = mapped_column(_enum(ReminderKind))
    subject_id: Mapped[int] = mapped_column(Integer)  # the request or milestone id
    slot: Mapped[int] = mapped_column(Integer)
    recipient_id: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Never shifted past this instant (e.g. the automatic release it warns about).
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[ReminderState] = mapped_column(
        _enum(ReminderState), default=ReminderState.PENDING
    )
    key: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_reminder_due",
            "due_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_reminder_subject", "kind", "subject_id"),
        # A contract ending (or its window running out) stops its pending reminders.
        Index(
            "ix_reminder_contract_pending",
            "contract_id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )


class Notify(StrEnum):
    """Where a person is told what needs their action (cards and announcements are in
    the channel whatever they choose)."""

    CHANNEL = "channel"  # channel threads only (reminders mention them there)
    DM = "dm"  # a direct message from the app; reminders there instead of the thread
    BOTH = "both"  # a direct message, and reminders in the thread too (the default)
    DIGEST = "digest"  # one direct message at 09:00 on weekdays listing what waits


class NotificationChoice(Base):
    """A person's `Notify` choice; nobody's row means `Notify.BOTH`."""

    __tablename__ = "notification_choice"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    choice: Mapped[Notify] = mapped_column(_enum(Notify))
    # The workspace they chose in: where their digest is sent from.
    team_id: Mapped[str | None] = mapped_column(String(32))
    chosen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The digest's next 09:00 (in their time zone, when last looked up); None: look now.
    next_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_notification_choice_digest", "choice", "next_digest_at"),)


class Digest(Base):
    """One person's morning digest of one day (their local date): unique, so it is sent
    at most once a day however many sweepers run."""

    __tablename__ = "digest"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # How many items waited when it was queued (0: nothing to send that day).
    items: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("user_id", "day"),)


class WebhookState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"  # gave up after the last try; `webhooks log` shows it
    CANCELLED = "cancelled"  # its endpoint was removed before it went


class WebhookEndpoint(Base):
    """An operator's receiver of signed outgoing webhooks (domain/webhooks.py): every
    history event from its creation on is delivered to it once."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # The HMAC-SHA256 key of `Milestone-Signature`: never shown back in full.
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One event to one endpoint, written in the transaction that wrote the event: unique
    per (endpoint, event), retried with backoff, dead-lettered after the last try."""

    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[WebhookState] = mapped_column(_enum(WebhookState), default=WebhookState.PENDING)
    last_status: Mapped[int | None] = mapped_column(Integer)  # the receiver's HTTP status
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index(
            "ix_webhook_delivery_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_webhook_delivery_event_id", "event_id"),
    )


class PaymentState(StrEnum):
    PENDING = "pending"  # asked for: the client has a checkout link
    PAID = "paid"  # the provider confirmed it; its ledger entry is written
    FAILED = "failed"  # the provider said it failed; asking again gives a new link
    RETURNED = "returned"  # paid, but nothing could take it any more: given back
    CANCELLED = "cancelled"  # an owed top-up no longer owed (the milestone was refunded)
    REVERSED = "reversed"  # refunded or disputed outside the bot: the milestone is frozen


class ProviderPayment(Base):
    """Money the client pays through the payments provider (`PAYMENTS=stripe`) for a
    fund or a top-up: asked for when they fund, paid through a checkout link that is
    theirs alone, and turned into its ledger entry (`ledger_key`) only when the
    provider's signed webhook confirms it (domain/services/payments.py)."""

    __tablename__ = "provider_payment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    milestone_id: Mapped[int] = mapped_column(ForeignKey("milestone.id", ondelete="CASCADE"))
    ledger_key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    asked_by: Mapped[str] = mapped_column(String(32))
    # The pay link's secret (`/pay/<token>`): unguessable, new for every ask.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[PaymentState] = mapped_column(_enum(PaymentState), default=PaymentState.PENDING)
    checkout_session: Mapped[str | None] = mapped_column(String(255))
    payment_intent: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)  # why it failed, was returned or reversed

    __table_args__ = (
        Index("ix_provider_payment_milestone_id", "milestone_id"),
        Index("ix_provider_payment_payment_intent", "payment_intent"),
    )


class MovementState(StrEnum):
    PENDING = "pending"  # to be carried out (retried with backoff while the provider is down)
    SENT = "sent"  # the provider carried it out: `provider_ref` names its object
    FAILED = "failed"  # the provider refused it; `payments reconcile` shows it


class ProviderMovement(Base):
    """A release or refund the ledger recorded for money the provider holds: written
    in the transaction that wrote the ledger entry, carried out by the payments sender
    with the entry's key as the provider's idempotency key, so it moves money once."""

    __tablename__ = "provider_movement"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None for giving back a payment nothing could take (it never entered escrow).
    ledger_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_entry.id", ondelete="CASCADE"), unique=True
    )
    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"))
    milestone_id: Mapped[int | None] = mapped_column(ForeignKey("milestone.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(120), unique=True)
    # The provider's idempotency key (`domain.payments.Movement.idempotency_key`).
    idempotency_key: Mapped[str] = mapped_column(String(160))
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[MovementState] = mapped_column(
        _enum(MovementState), default=MovementState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Giving back a payment nothing could take: the provider's payment to refund.
    refund_of: Mapped[str | None] = mapped_column(String(255))
    provider_ref: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_provider_movement_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_provider_movement_contract_id", "contract_id"),
        Index("ix_provider_movement_refund_of", "refund_of"),
    )


class PayoutAccount(Base):
    """A provider-side person's payout account at the payments provider (Stripe
    Connect): created when they first open their link, ready once the provider says
    they can be paid (`account.updated`)."""

    __tablename__ = "payout_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), unique=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    # The onboarding link's secret (`/payouts/<token>`), new each time it is asked for.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    ready: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentWebhook(Base):
    """A payments provider's webhook, by its event id: a replay finds it and changes
    nothing. Written in the transaction that applies the event."""

    __tablename__ = "payment_webhook"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(120))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(Text)


# Slack's installation and OAuth state stores keep their rows here too (bot/installs.py).
define_installation_tables(Base.metadata)
