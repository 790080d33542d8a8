"""Submitted work: one message per milestone, updated when it is approved or sent back."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.models.blocks import Block

from domain.model import Contract, Dispute, Milestone, MilestoneStatus
from domain.payments import REFUNDED_NOTE, RELEASED_NOTE
from handlers.blocks.contract import work_buttons
from handlers.blocks.describe import (
    SHORT_TITLE_LIMIT,
    contract_title,
    milestone_name,
    provider_speakers,
    released_early,
)
from handlers.blocks.format import actor, instant, money, plural, quote, user
from handlers.blocks.kit import actions, button, context, section
from handlers.blocks.message import Message
from handlers.blocks.paying import noted
from handlers.ids import Action
from handlers.payloads import MilestoneRef

HEAD_BLOCK = "work_head"
SUBMITTED_BLOCK = "work_submitted"
NOTE_BLOCK = "work_note"
DEADLINE_BLOCK = "work_deadline"
ACTIONS_BLOCK = "work_actions"
MORE_TIME_BLOCK = "work_more_time"
MORE_TIME_ACTIONS_BLOCK = "work_more_time_actions"
OUTCOME_BLOCK = "work_outcome"


def build_work_card(
    contract: Contract,
    milestone: Milestone,
    *,
    dispute: Dispute | None = None,
    record_only: bool = True,
) -> Message:
    """Work submitted for `milestone`: Approve & release / Request changes while it waits
    for review; afterwards the outcome (paid, by whom or automatically; or changes
    requested, with the note) and no buttons. `record_only`: see handlers.blocks.paying."""
    currency = contract.currency
    amount = money(milestone.amount_minor, currency)
    blocks: list[Block] = [
        section(
            f":package: *Work submitted* — milestone {milestone_name(milestone)}\n"
            f"{amount}{released_early(milestone, currency)}  ·  Contract {contract.id} · "
            f"*{contract_title(contract, SHORT_TITLE_LIMIT)}*",
            block_id=HEAD_BLOCK,
        )
    ]
    if milestone.submitted_at is not None:
        who = actor(milestone.submitted_by) if milestone.submitted_by else "The provider"
        round_ = (
            f"  ·  submission {milestone.submission_count}"
            if (milestone.submission_count or 0) > 1
            else ""
        )
        blocks.append(
            context(
                f"Submitted by {who} {instant(milestone.submitted_at)}{round_}",
                block_id=SUBMITTED_BLOCK,
            )
        )
    note = milestone.submission_note or ""
    if note.strip():
        blocks.append(section(quote(note, 2900), block_id=NOTE_BLOCK))
    status = milestone.status
    if status == MilestoneStatus.SUBMITTED:
        if milestone.auto_release_at is not None:
            blocks.append(
                section(
                    f":hourglass_flowing_sand: Automatic release "
                    f"{instant(milestone.auto_release_at)} if there's no answer.",
                    block_id=DEADLINE_BLOCK,
                )
            )
        ref = MilestoneRef(contract_id=contract.id, milestone_id=milestone.id).dump()
        provider = "the agency" if contract.is_agency else "the freelancer"
        held = money(milestone.still_held_minor, currency)
        blocks.append(
            actions(
                ACTIONS_BLOCK,
                work_buttons(
                    ref,
                    amount=held,
                    number=milestone.number,
                    provider=provider,
                    record_only=record_only,
                ),
            )
        )
        blocks += _more_time(contract, milestone, ref)
        blocks.append(context(f"{user(contract.client_id)} approves or requests changes"))
    else:
        blocks.append(
            section(
                _outcome(contract, milestone, dispute, record_only=record_only),
                block_id=OUTCOME_BLOCK,
            )
        )
    return Message(text=_fallback(contract, milestone, amount), blocks=blocks)


def _more_time(contract: Contract, milestone: Milestone, ref: str) -> list[Block]:
    """The client's ask for more time to review, with the provider side's answer."""
    days = milestone.extension_waiting
    if days is None or milestone.auto_release_at is None:
        return []
    moved = milestone.auto_release_at + timedelta(days=days)
    return [
        section(
            f":hourglass: {user(contract.client_id)} asks for {plural(days, 'more day')} to "
            f"review. {provider_speakers(contract)}: *Give more time* moves the automatic "
            f"release to {instant(moved)}.",
            block_id=MORE_TIME_BLOCK,
        ),
        actions(
            MORE_TIME_ACTIONS_BLOCK,
            [
                button(
                    f"Give more time (+{plural(days, 'day')})",
                    Action.GIVE_MORE_TIME,
                    ref,
                    style="primary",
                ),
                button("Keep the date", Action.KEEP_REVIEW_DATE, ref),
            ],
        ),
    ]


def _outcome(
    contract: Contract, milestone: Milestone, dispute: Dispute | None, *, record_only: bool
) -> str:
    amount = money(milestone.amount_minor, contract.currency)
    if dispute is not None:
        return _disputed(contract, dispute)
    if milestone.status == MilestoneStatus.RELEASED:
        when = f" {instant(milestone.released_at)}" if milestone.released_at else ""
        early = milestone.released_early_minor or 0
        also = ""
        if early:  # what was left after partial releases
            also = f" ({money(early, contract.currency)} paid early, {amount} in all)"
            amount = money(milestone.amount_minor - early, contract.currency)
        if milestone.released_automatically:
            return (
                f":white_check_mark: *Paid automatically*{when}: {amount} released after "
                f"the review period ended with no answer{also}."
                f"{noted(RELEASED_NOTE, record_only=record_only)}"
            )
        by = f" by {actor(milestone.released_by)}" if milestone.released_by else ""
        return (
            f":white_check_mark: *Approved and paid*{by}{when}: {amount} released{also}."
            f"{noted(RELEASED_NOTE, record_only=record_only)}"
        )
    if milestone.refunded_at is not None:
        return (
            f":lock: The contract ended {instant(milestone.refunded_at)} before a decision; "
            "escrow was refunded to the client."
            f"{noted(REFUNDED_NOTE, record_only=record_only)}"
        )
    if milestone.changes_requested_at is not None:
        text = (
            f":leftwards_arrow_with_hook: *Changes requested* by {user(contract.client_id)} "
            f"{instant(milestone.changes_requested_at)}. The review clock stopped; the next "
            "submission starts a new one."
        )
        note = milestone.changes_requested_note or ""
        return text + (f"\n{quote(note, 2500)}" if note.strip() else "")
    return f"Milestone {milestone.number} is {milestone.status.value}."


def _fallback(contract: Contract, milestone: Milestone, amount: str) -> str:
    title = contract_title(contract, SHORT_TITLE_LIMIT)
    if milestone.status == MilestoneStatus.SUBMITTED:
        return (
            f"Work submitted for milestone {milestone.number} ({amount}) on contract "
            f"{contract.id} ({title}): {user(contract.client_id)}, approve or request changes."
        )
    if milestone.status == MilestoneStatus.RELEASED:
        return f"Milestone {milestone.number} on contract {contract.id} ({title}) is paid."
    return f"Milestone {milestone.number} on contract {contract.id} ({title}): work reviewed."


def _disputed(contract: Contract, dispute: Dispute) -> str:
    """The work was disputed: frozen while the dispute is open, then how it was settled."""
    if dispute.is_open:
        return (
            f":scales: *Disputed* by {actor(dispute.opened_by)} {instant(dispute.opened_at)}: "
            f"{money(dispute.held_minor, contract.currency)} is frozen in escrow until a split "
            "is agreed or an operator decides (see the dispute card)."
        )
    to_provider = money(dispute.to_provider_minor or 0, contract.currency)
    to_client = money(dispute.to_client_minor or 0, contract.currency)
    how = "by an operator" if dispute.settled_how == "operator" else "by agreement"
    when = f" {instant(dispute.settled_at)}" if dispute.settled_at else ""
    return (
        f":handshake: *Dispute settled {how}*{when}: {to_provider} to the provider, "
        f"{to_client} back to the client."
    )
