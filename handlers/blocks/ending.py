"""Ending and disputes: the confirmation a typed `end` answers with, the ending notice
(the provider side's Accept refund / Dispute), the dispute card (a proposed split and
its Agree to split), and the form for a dispute's reason.

The notice and the dispute card are posted once and updated in place: the outcome is
shown and the buttons are gone once they no longer apply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from slack_sdk.models.blocks import Block, ButtonElement
from slack_sdk.models.views import View

from domain.model import Contract, ContractStatus, Dispute, Milestone, MilestoneStatus
from domain.payments import REFUNDED_NOTE
from domain.policy import MAX_TEXT
from domain.services import EndHow, EndPreview
from handlers.blocks import fields as F
from handlers.blocks.describe import (
    SHORT_TITLE_LIMIT,
    contract_title,
    milestone_name,
    provider_speakers,
)
from handlers.blocks.format import actor, escape, instant, money, quote, user, users
from handlers.blocks.kit import actions, button, confirm, context, section
from handlers.blocks.message import Message
from handlers.blocks.modals import _modal, _text_input
from handlers.ids import Action
from handlers.ids import View as ViewId
from handlers.payloads import ContractRef, MilestoneRef, ModalContext, ProposalRef

CONFIRM_BLOCK = "end_confirm"
ENDING_HEAD_BLOCK = "ending_head"
ENDING_ACTIONS_BLOCK = "ending_actions"
ENDING_OUTCOME_BLOCK = "ending_outcome"
DISPUTE_HEAD_BLOCK = "dispute_head"
DISPUTE_REASON_BLOCK = "dispute_reason"
DISPUTE_PROPOSAL_BLOCK = "dispute_proposal"
DISPUTE_ACTIONS_BLOCK = "dispute_actions"
DISPUTE_OUTCOME_BLOCK = "dispute_outcome"


# --------------------------------------------------------------------------------------
# The confirmation


def build_end_confirmation(preview: EndPreview, *, record_only: bool = True) -> Message:
    """What ending does to the money, and the **End contract** button that does it."""
    title = escape(preview.title)
    held = money(preview.held_minor, preview.currency)
    number = preview.milestone_number
    if preview.how == EndHow.CLOSE:
        effect = "Nothing is held in escrow, so the contract closes at once and is read-only."
    elif preview.how == EndHow.REFUND:
        effect = (
            f"Milestone {number} holds *{held}* in escrow: it goes back to "
            f"{user(preview.client_id)} at once (your side gives it up), and the contract "
            "closes."
        )
    else:
        until = instant(preview.window_ends_at) if preview.window_ends_at else "in 7 days"
        effect = (
            f"Milestone {number} holds *{held}* in escrow. The contract becomes *ending*: "
            f"{users(preview.provider_ids, conjunction='or')} may accept the refund or "
            f"dispute it until {until}. If they do neither, {held} is refunded to you then "
            "and the contract closes. Nothing is funded or proposed meanwhile."
        )
    if preview.how != EndHow.CLOSE and record_only:
        effect += f" {REFUNDED_NOTE}"
    ref = ContractRef(contract_id=preview.contract_id).dump()
    label = "End contract" if preview.how != EndHow.REFUND else f"End contract (refund {held})"
    blocks: list[Block] = [
        section(
            f":warning: *End contract {preview.contract_id}?* · *{title}*\n{effect}",
            block_id=CONFIRM_BLOCK,
        ),
        actions(ENDING_ACTIONS_BLOCK, [button(label, Action.END_CONTRACT, ref, style="danger")]),
        context("Nothing happens unless you click the button."),
    ]
    return Message(text=f"End contract {preview.contract_id} ({title})? {effect}", blocks=blocks)


# --------------------------------------------------------------------------------------
# The ending notice


def build_ending_card(
    contract: Contract, *, held_minor: int, milestone: Milestone | None, dispute: Dispute | None
) -> Message:
    """The client ended the contract with escrow held: the provider side's window, with
    Accept refund and Dispute while it runs; the outcome afterwards."""
    currency = contract.currency
    held = money(held_minor, currency)
    name = milestone_name(milestone) if milestone is not None else "in progress"
    started = instant(contract.ending_started_at) if contract.ending_started_at else ""
    by = actor(contract.ending_by) if contract.ending_by else user(contract.client_id)
    blocks: list[Block] = [
        section(
            f":hourglass_flowing_sand: *Contract {contract.id} is ending* · "
            f"*{contract_title(contract, SHORT_TITLE_LIMIT)}*\n"
            f"{by} ended it {started}. Milestone {name} holds *{held}* in escrow.",
            block_id=ENDING_HEAD_BLOCK,
        )
    ]
    waiting = (
        contract.status == ContractStatus.ENDING
        and milestone is not None
        and milestone.status == MilestoneStatus.FUNDED
        and contract.ending_deadline_at is not None
    )
    if waiting and milestone is not None and contract.ending_deadline_at is not None:
        blocks.append(
            section(
                f"{provider_speakers(contract)}: *Accept refund* gives {held} back to "
                f"{user(contract.client_id)}; *Dispute* freezes it until you agree on a "
                f"split. If neither happens by {instant(contract.ending_deadline_at)}, it is "
                "refunded then and the contract closes."
            )
        )
        blocks.append(actions(ENDING_ACTIONS_BLOCK, ending_buttons(contract, milestone, held)))
    else:
        blocks.append(
            section(_ending_outcome(contract, held, dispute), block_id=ENDING_OUTCOME_BLOCK)
        )
    return Message(text=f"Contract {contract.id} is ending: {held} held in escrow.", blocks=blocks)


def ending_buttons(contract: Contract, milestone: Milestone, held: str) -> list[ButtonElement]:
    """Accept refund (with a confirm naming the amount) and Dispute (opens the form)."""
    return [
        button(
            f"Accept refund ({held})",
            Action.ACCEPT_REFUND,
            ContractRef(contract_id=contract.id).dump(),
            style="primary",
            confirm_with=confirm(
                "Accept the refund?",
                f"{held} goes back to the client and the contract closes. It can't be undone.",
                ok=f"Refund {held}",
            ),
        ),
        button(
            "Dispute",
            Action.DISPUTE,
            MilestoneRef(contract_id=contract.id, milestone_id=milestone.id).dump(),
        ),
    ]


def _ending_outcome(contract: Contract, held: str, dispute: Dispute | None) -> str:
    if dispute is not None and dispute.is_open:
        return (
            f":scales: *Refund disputed* by {actor(dispute.opened_by)} "
            f"{instant(dispute.opened_at)}: the escrow is frozen until a split is agreed "
            "or an operator decides (see the dispute below)."
        )
    closed = instant(contract.closed_at) if contract.closed_at else ""
    if dispute is not None:
        return f":handshake: *Settled* {closed}: the dispute decided the escrow; closed."
    if contract.status == ContractStatus.CLOSED:
        return f":lock: *Closed* {closed}: {held} went back to {user(contract.client_id)}."
    return f"Contract {contract.id} is {contract.status.value}."


# --------------------------------------------------------------------------------------
# The dispute card


def build_dispute_card(contract: Contract, milestone: Milestone, dispute: Dispute) -> Message:
    """A frozen milestone: who disputed what and why, the split on the table with
    **Agree to split** for the other side; the outcome once settled."""
    currency = contract.currency
    held = money(dispute.held_minor, currency)
    what = "submitted work" if dispute.opened_by == contract.client_id else "the end-refund"
    blocks: list[Block] = [
        section(
            f":scales: *Dispute* — milestone {milestone_name(milestone)}\n"
            f"{actor(dispute.opened_by)} disputed {what} {instant(dispute.opened_at)}. "
            f"*{held}* is frozen in escrow  ·  Contract {contract.id} · "
            f"*{contract_title(contract, SHORT_TITLE_LIMIT)}*",
            block_id=DISPUTE_HEAD_BLOCK,
        ),
        section(quote(dispute.reason, 2900), block_id=DISPUTE_REASON_BLOCK),
    ]
    if not dispute.is_open:
        blocks.append(section(_settled(contract, dispute), block_id=DISPUTE_OUTCOME_BLOCK))
        return Message(
            text=f"The dispute over milestone {milestone.number} is settled.", blocks=blocks
        )
    to_provider = dispute.proposed_to_provider_minor
    if dispute.proposed_by is not None and to_provider is not None:
        to_client = dispute.held_minor - to_provider
        blocks.append(
            section(
                f"*Proposed split* by {actor(dispute.proposed_by)}"
                f"{' ' + instant(dispute.proposed_at) if dispute.proposed_at else ''}: "
                f"*{money(to_provider, currency)}* to the provider, "
                f"*{money(to_client, currency)}* back to the client.",
                block_id=DISPUTE_PROPOSAL_BLOCK,
            )
        )
        blocks.append(actions(DISPUTE_ACTIONS_BLOCK, [agree_to_split_button(contract, dispute)]))
        other = (
            provider_speakers(contract)
            if contract.client_id == dispute.proposed_by
            else user(contract.client_id)
        )
        blocks.append(context(f"{other} agrees to it, or proposes another split."))
    blocks.append(
        context(
            f"Either side proposes a split: `/milestone settle {milestone.number} "
            "<amount-to-provider>` (a newer proposal replaces the older one). Nothing is "
            "released or refunded by itself; an operator can also decide."
        )
    )
    return Message(
        text=f"Milestone {milestone.number} is disputed: {held} frozen in escrow.", blocks=blocks
    )


def agree_to_split_button(contract: Contract, dispute: Dispute) -> ButtonElement:
    """*Agree to split* for the proposal on the table (the button names it: a newer
    proposal makes it stale), with a confirm naming both parts."""
    currency = contract.currency
    to_provider = dispute.proposed_to_provider_minor or 0
    to_client = dispute.held_minor - to_provider
    ref = ProposalRef(
        contract_id=contract.id, dispute_id=dispute.id, proposal=max(dispute.proposal_number, 1)
    ).dump()
    return button(
        f"Agree to split ({money(to_provider, currency)} / {money(to_client, currency)})",
        Action.AGREE_TO_SPLIT,
        ref,
        style="primary",
        confirm_with=confirm(
            "Agree to this split?",
            f"{money(to_provider, currency)} is released to the provider and "
            f"{money(to_client, currency)} refunded to the client. It can't be undone.",
            ok="Agree",
        ),
    )


def _settled(contract: Contract, dispute: Dispute) -> str:
    currency = contract.currency
    to_provider = money(dispute.to_provider_minor or 0, currency)
    to_client = money(dispute.to_client_minor or 0, currency)
    when = instant(dispute.settled_at) if dispute.settled_at else ""
    split = f"*{to_provider}* to the provider, *{to_client}* back to the client"
    if dispute.settled_how == "operator":
        reason = dispute.decision_reason or ""
        text = f":scales: *Decided by an operator* {when}: {split}."
        return text + (f"\n{quote(reason, 2500)}" if reason.strip() else "")
    by = actor(dispute.settled_by) if dispute.settled_by else "the other side"
    return f":handshake: *Settled by agreement* {when} ({by} agreed): {split}."


# --------------------------------------------------------------------------------------
# The form for a dispute's reason


class DisputeForm(TypedDict):
    reason: str


def build_dispute_modal(ctx: ModalContext, contract: Contract, milestone: Milestone) -> View:
    held = money(milestone.still_held_minor, contract.currency)
    if milestone.status == MilestoneStatus.SUBMITTED:
        intro = (
            f"Dispute the work on milestone {milestone_name(milestone)} instead of approving "
            f"it: its {held} stays in escrow, frozen, with no automatic release, until you "
            "and the provider agree on a split or an operator decides."
        )
    else:
        intro = (
            f"Dispute the refund of milestone {milestone_name(milestone)}: its {held} stays "
            "in escrow, frozen, until you and the client agree on a split or an operator "
            "decides."
        )
    blocks: list[Block] = [
        section(intro),
        _text_input(
            F.REASON,
            "Why?",
            max_length=MAX_TEXT,
            multiline=True,
            placeholder="e.g. The delivered pages don't match the agreed wireframes",
            hint="Shown on the dispute in the channel.",
        ),
    ]
    return _modal(
        ViewId.DISPUTE, f"Dispute milestone {milestone.number}", ctx, blocks, submit="Dispute"
    )


def read_dispute(values: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> DisputeForm:
    state = values.get(F.REASON, {}).get(F.REASON, {})
    return {"reason": str(state.get("value") or "").strip()}
