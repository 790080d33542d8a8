"""Use cases: every state change of a contract goes through one of these functions.

Each service owns its transaction (`write_transaction`): it locks the contract row
(`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` holds the database write
lock), re-reads every fact it needs, lets the model's transitions check the rules
tables and the actor's role, writes history, ledger and outbox rows, and returns a
small frozen `Outcome`. A `DomainError` rolls everything back. Repeating an action that
is already done returns the current outcome with `already_done=True`.

By family: `contracts` (create, agree, end), `changes` (change milestones directly or
propose a change request), `requests` (accept, decline, withdraw), `escrow` (fund,
submit, approve, request changes, automatic release). Shared internals: `_locking`
(load and lock), `_writes` (history, reminders, outbox), `_validation` (what people
typed), `_steps` (steps several use cases take); `inputs` holds what they take and give.
"""

from domain.services.changes import change_milestones, propose_changes
from domain.services.contracts import agree_to_terms, create_contract, end_contract, record_team
from domain.services.escrow import (
    approve_work,
    auto_release,
    fund_milestone,
    release_due,
    request_changes,
    submit_work,
)
from domain.services.inputs import (
    Agency,
    ChangeInput,
    MilestoneDeletion,
    MilestoneEdit,
    NewMilestone,
    Outcome,
)
from domain.services.requests import accept_request, decline_request, withdraw_request

__all__ = [
    "Agency",
    "ChangeInput",
    "MilestoneDeletion",
    "MilestoneEdit",
    "NewMilestone",
    "Outcome",
    "accept_request",
    "agree_to_terms",
    "approve_work",
    "auto_release",
    "change_milestones",
    "create_contract",
    "decline_request",
    "end_contract",
    "fund_milestone",
    "propose_changes",
    "record_team",
    "release_due",
    "request_changes",
    "submit_work",
    "withdraw_request",
]
