"""The words of the state machines: what a contract, a milestone and a change request
can be, what a change does, and the parties' roles. Plain enums, stored as their
values; domain/rules.py says how they follow each other and who may do what."""

from __future__ import annotations

from enum import StrEnum


class ContractStatus(StrEnum):
    NEGOTIATING = "negotiating"
    ACTIVE = "active"
    ENDING = "ending"  # the client ended it with escrow held: the provider has a window
    CLOSED = "closed"


class MilestoneStatus(StrEnum):
    PENDING = "pending"
    FUNDED = "funded"
    SUBMITTED = "submitted"
    RELEASED = "released"
    DELETED = "deleted"
    DISPUTED = "disputed"  # its escrow is frozen until a split is agreed or decided


class RequestStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"
    COUNTERED = "countered"  # the other side answered it with a counter-offer


class ChangeKind(StrEnum):
    ADD = "add"
    EDIT = "edit"
    DELETE = "delete"


class Role(StrEnum):
    CLIENT = "client"
    FREELANCER = "freelancer"
    MANAGER = "manager"
    MEMBER = "member"
