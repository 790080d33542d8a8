"""Use cases: every state change of a contract goes through one of these functions.

Each service owns its transaction (`write_transaction`): it locks the contract row
(`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` holds the database write
lock), re-reads every fact it needs, lets the model's transitions check the rules
tables and the actor's role, writes history, ledger and outbox rows, and returns a
small frozen `Outcome`. A `DomainError` rolls everything back. Repeating an action that
is already done returns the current outcome with `already_done=True`.

By family: `contracts` (create, agree), `endings` (end, accept the refund, the
window running out), `disputes` (dispute, propose and agree a split, an operator's
decision), `changes` (change milestones directly or
propose a change request), `requests` (accept, decline, withdraw), `counters` (suggest
changes to a request, revise one's own in one step), `escrow` (fund,
submit, approve, request changes, automatic release), `flexible` (partial release,
bonus, more time to review). Shared internals: `_locking` (load and lock), `_writes`
(history, reminders, outbox), `_validation` (what people typed), `_steps` (steps
several use cases take); `inputs` holds what they take and give.
"""

from domain.services.changes import change_milestones, propose_changes
from domain.services.contracts import agree_to_terms, create_contract, record_team
from domain.services.counters import counter_request, revise_request
from domain.services.disputes import (
    agree_to_split,
    dispute_milestone,
    propose_split,
    resolve_dispute,
)
from domain.services.endings import (
    EndHow,
    EndPreview,
    accept_refund,
    end_contract,
    preview_end,
    refund_at_window_end,
    refund_due,
)
from domain.services.escrow import (
    approve_work,
    auto_release,
    fund_milestone,
    release_due,
    request_changes,
    submit_work,
)
from domain.services.flexible import (
    extend_review,
    give_more_time,
    keep_review_date,
    pay_bonus,
    release_part,
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
    "EndHow",
    "EndPreview",
    "accept_refund",
    "agree_to_split",
    "dispute_milestone",
    "end_contract",
    "preview_end",
    "propose_split",
    "refund_at_window_end",
    "refund_due",
    "resolve_dispute",
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
    "counter_request",
    "create_contract",
    "decline_request",
    "extend_review",
    "fund_milestone",
    "give_more_time",
    "keep_review_date",
    "pay_bonus",
    "propose_changes",
    "record_team",
    "release_due",
    "release_part",
    "request_changes",
    "revise_request",
    "submit_work",
    "withdraw_request",
]
