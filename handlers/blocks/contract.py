"""The contract card: one message per contract, re-rendered in place after every change."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import Block, ButtonElement

from domain.model import Contract, ContractStatus, Milestone, MilestoneStatus
from domain.payments import RECORD_ONLY_NOTE
from domain.policy import MAX_MILESTONES
from domain.snapshot import ContractSnapshot, Next
from handlers.blocks.describe import (
    CONTRACT_BADGE,
    agreement_text,
    contract_title,
    milestone_line,
    next_text,
    parties_text,
    request_summary,
)
from handlers.blocks.ending import ending_buttons
from handlers.blocks.format import escape, instant, money, pack, pack_counted, plural
from handlers.blocks.impact import request_impact
from handlers.blocks.kit import (
    actions,
    button,
    confirm,
    context,
    divider,
    section,
)
from handlers.blocks.message import Message
from handlers.blocks.paying import (
    approve_confirm_text,
    fund_confirm_text,
    payment_text,
    top_up_confirm_text,
)
from handlers.ids import Action
from handlers.payloads import ContractRef, MilestoneRef, RequestRef

MAX_MILESTONE_SECTIONS = 12
MAX_REQUEST_LINES = 5
STRUCK_DELETED_LIMIT = 3  # more deleted milestones than this are summarised in one line

# Block ids of the card (stable, so tests and listeners can find things).
HEAD_BLOCK = "card_head"
PARTIES_BLOCK = "card_parties"
ESCROW_BLOCK = "card_escrow"
REQUESTS_BLOCK = "card_requests"
AGREEMENT_BLOCK = "card_agreement"
NEXT_BLOCK = "card_next"
ACTIONS_BLOCK = "card_actions"
FOOTER_BLOCK = "card_footer"


def build_contract_card(
    snap: ContractSnapshot, *, now: datetime, record_only: bool = True
) -> Message:
    """The contract as everyone in the channel sees it, with buttons for what comes next.

    At most ~20 blocks whatever the size: milestone lines are packed into sections of
    < 3000 characters (descriptions cut short), deleted milestones and requests are
    summarised, and closed contracts get no buttons. `record_only` (`PAYMENTS=ledger`):
    the card says the bot keeps the record only (domain.payments); without it money
    moves through the provider, and a milestone's payment shows ("payment pending").
    """
    contract = snap.contract
    blocks: list[Block] = [
        section(
            f":page_facing_up: *{contract_title(contract)}*\n"
            f"Contract {contract.id}  ·  {CONTRACT_BADGE[contract.status]}  ·  {contract.currency}",
            block_id=HEAD_BLOCK,
        ),
        context(parties_text(contract), block_id=PARTIES_BLOCK),
        divider(),
    ]
    blocks += _milestone_sections(snap, now=now)
    blocks.append(divider())
    blocks.append(_escrow_block(snap, record_only=record_only))
    if snap.pending_requests:
        blocks.append(_requests_block(snap))
    if contract.status == ContractStatus.NEGOTIATING and contract.live_milestones:
        blocks.append(section(agreement_text(snap), block_id=AGREEMENT_BLOCK))
    blocks.append(section(f"*Next:* {next_text(snap)}", block_id=NEXT_BLOCK))
    buttons = card_buttons(snap, record_only=record_only)
    if buttons:
        blocks.append(actions(ACTIONS_BLOCK, buttons))
    blocks.append(
        context(
            f"Updated {instant(now)}  ·  `/milestone history` shows every change  ·  "
            "`/milestone help`",
            block_id=FOOTER_BLOCK,
        )
    )
    return Message(text=card_text(snap), blocks=blocks)


def build_status(
    snap: ContractSnapshot, *, now: datetime, viewer: str | None = None, record_only: bool = True
) -> Message:
    """The ephemeral answer to `/milestone status`: the card, with "your turn" for the viewer."""
    card = build_contract_card(snap, now=now, record_only=record_only)
    if viewer is None or viewer not in snap.next_action.owed_by:
        return card
    blocks = [
        section(
            f"*Next:* :point_right: *Your turn* — {next_text(snap, viewer=viewer)}",
            block_id=NEXT_BLOCK,
        )
        if getattr(block, "block_id", None) == NEXT_BLOCK
        else block
        for block in card.blocks
    ]
    return Message(text=card.text, blocks=blocks)


def card_text(snap: ContractSnapshot) -> str:
    """The card's notification / fallback text."""
    contract = snap.contract
    status = contract.status.value
    return f"Contract {contract.id} · {escape(contract.title)} ({status}). Next: {next_text(snap)}"


# --------------------------------------------------------------------------------------
# Buttons


def card_buttons(
    snap: ContractSnapshot,
    *,
    general: bool = True,
    requests: bool = False,
    record_only: bool = True,
) -> list[ButtonElement]:
    """The buttons for what comes next (and, with `general`, Add milestone / Propose changes).

    With `requests`, a pending change request the client must answer gets Accept / Decline
    (App Home); on the card those live on the request's own message.
    """
    contract = snap.contract
    if contract.status == ContractStatus.CLOSED:
        return []
    action = snap.next_action
    buttons: list[ButtonElement] = []
    ref = ContractRef(contract_id=contract.id).dump()
    if action.kind == Next.AGREE and action.owed_by:
        buttons.append(button("Agree to terms", Action.AGREE, ref, style="primary"))
    elif action.kind == Next.FUND and action.milestone is not None:
        buttons.append(fund_button(snap, action.milestone, record_only=record_only))
    elif action.kind == Next.REVIEW and action.milestone is not None:
        buttons += review_buttons(snap, action.milestone, record_only=record_only)
    elif action.kind == Next.ANSWER_ENDING and action.milestone is not None:
        held = money(snap.escrow.balance_minor, contract.currency)
        buttons += ending_buttons(contract, action.milestone, held)
    elif requests and action.kind == Next.ANSWER_REQUEST and action.request is not None:
        impact = request_impact(contract, action.request)
        request_ref = RequestRef(contract_id=contract.id, request_id=action.request.id).dump()
        buttons.append(
            accept_button(
                request_ref,
                top_up=impact.top_up,
                currency=contract.currency,
                record_only=record_only,
            )
        )
        buttons.append(button("Decline", Action.DECLINE, request_ref))
    if general:
        if contract.status == ContractStatus.NEGOTIATING:
            if len(contract.live_milestones) < MAX_MILESTONES:
                style = "primary" if action.kind == Next.ADD_MILESTONES else None
                buttons.append(button("Add milestone", Action.ADD_MILESTONE, ref, style=style))
        elif contract.status == ContractStatus.ACTIVE:
            buttons.append(button("Propose changes", Action.PROPOSE, ref))
    return buttons


def fund_button(
    snap: ContractSnapshot | Contract, milestone: Milestone, *, record_only: bool = True
) -> ButtonElement:
    contract = snap.contract if isinstance(snap, ContractSnapshot) else snap
    amount = money(milestone.amount_minor, contract.currency)
    provider = "the agency" if contract.is_agency else "the freelancer"
    return button(
        f"Fund milestone {milestone.number} ({amount})",
        Action.FUND,
        MilestoneRef(contract_id=contract.id, milestone_id=milestone.id).dump(),
        style="primary",
        confirm_with=confirm(
            f"Fund milestone {milestone.number}?",
            fund_confirm_text(amount, milestone.number, provider, record_only=record_only),
            ok=f"Fund {amount}",
        ),
    )


def review_buttons(
    snap: ContractSnapshot, milestone: Milestone, *, record_only: bool = True
) -> list[ButtonElement]:
    contract = snap.contract
    return work_buttons(
        MilestoneRef(contract_id=contract.id, milestone_id=milestone.id).dump(),
        amount=money(milestone.amount_minor, contract.currency),
        number=milestone.number,
        provider="the agency" if contract.is_agency else "the freelancer",
        record_only=record_only,
    )


def work_buttons(
    ref: str, *, amount: str, number: int, provider: str, record_only: bool = True
) -> list[ButtonElement]:
    """Approve & release (with a confirm naming the amount), Request changes, and Dispute
    (a form for the reason: the escrow is frozen until a split is agreed)."""
    return [
        button(
            "Approve & release",
            Action.APPROVE,
            ref,
            style="primary",
            confirm_with=confirm(
                f"Approve milestone {number}?",
                approve_confirm_text(amount, provider, record_only=record_only),
                ok=f"Release {amount}",
            ),
        ),
        button("Request changes", Action.REQUEST_CHANGES, ref),
        button("Dispute", Action.DISPUTE, ref),
    ]


def accept_button(
    ref: str, *, top_up: int, currency: str, record_only: bool = True
) -> ButtonElement:
    """Accept; when accepting deposits more escrow at once, a confirm names the amount."""
    if top_up <= 0:
        return button("Accept", Action.ACCEPT, ref, style="primary")
    amount = money(top_up, currency)
    return button(
        f"Accept (adds {amount} to escrow)",
        Action.ACCEPT,
        ref,
        style="primary",
        confirm_with=confirm(
            "Accept and top up escrow?",
            top_up_confirm_text(amount, record_only=record_only),
            ok=f"Accept, deposit {amount}",
        ),
    )


# --------------------------------------------------------------------------------------
# Sections


def _milestone_sections(snap: ContractSnapshot, *, now: datetime) -> list[Block]:
    contract = snap.contract
    live = contract.live_milestones
    deleted = [m for m in contract.milestones if m.status == MilestoneStatus.DELETED]
    if not contract.milestones:
        hint = (
            "Add one with *Add milestone* or `/milestone add`."
            if contract.status == ContractStatus.NEGOTIATING
            else ""
        )
        return [section(f"*Milestones*\n_No milestones yet._ {hint}".rstrip())]
    description_limit = 140 if len(live) <= 10 else 60
    title_limit = 100 if len(live) <= 25 else 60
    lines: list[str] = []
    summarise_deleted = len(deleted) > STRUCK_DELETED_LIMIT
    for milestone in contract.milestones:
        if milestone.status == MilestoneStatus.DELETED and summarise_deleted:
            continue
        lines.append(
            milestone_line(
                milestone,
                contract.currency,
                now=now,
                description_limit=description_limit,
                title_limit=title_limit,
                payment=payment_text(
                    snap.payments.get(milestone.id), snap.top_ups_owed.get(milestone.id)
                ),
            )
        )
    if summarise_deleted:
        numbers = ", ".join(str(m.number) for m in deleted)
        lines.append(f":wastebasket: _Deleted: {numbers}_")
    heading = f"*Milestones* · {plural(len(live), 'milestone')}"
    packed = pack_counted([heading, *lines])
    texts = [text for text, _ in packed]
    if len(packed) > MAX_MILESTONE_SECTIONS:
        kept = packed[: MAX_MILESTONE_SECTIONS - 1]
        hidden = len(lines) + 1 - sum(n for _, n in kept)
        texts = [text for text, _ in kept]
        texts.append(f"…and {plural(hidden, 'more milestone')} (see `/milestone history`).")
    return [section(text, block_id=f"card_milestones_{i}") for i, text in enumerate(texts)]


def _escrow_block(snap: ContractSnapshot, *, record_only: bool) -> Block:
    contract = snap.contract
    currency = contract.currency
    escrow = snap.escrow
    total = money(contract.total_minor, currency)
    if contract.status == ContractStatus.NEGOTIATING and escrow.funded_minor == 0:
        return context(
            f":moneybag: Contract total *{total}* over "
            f"{plural(len(contract.live_milestones), 'milestone')}  ·  escrow is funded one "
            f"milestone at a time once both sides agree"
            + (f"  ·  {RECORD_ONLY_NOTE}" if record_only else "  ·  paid with Stripe"),
            block_id=ESCROW_BLOCK,
        )
    fields = [
        f"*Contract total*\n{total}",
        f"*In escrow*\n{money(escrow.balance_minor, currency)}",
        f"*Funded*\n{money(escrow.funded_minor, currency)}",
        f"*Released*\n{money(escrow.released_minor, currency)}",
    ]
    if escrow.refunded_minor:
        fields.append(f"*Refunded*\n{money(escrow.refunded_minor, currency)}")
    if escrow.bonus_minor:
        fields.append(f"*Bonuses (outside escrow)*\n{money(escrow.bonus_minor, currency)}")
    heading = (
        f":receipt: {RECORD_ONLY_NOTE}"
        if record_only
        else ":receipt: Payments go through Stripe: a release pays the provider side out."
    )
    return section(heading, fields=fields, block_id=ESCROW_BLOCK)


def _requests_block(snap: ContractSnapshot) -> Block:
    pending = snap.pending_requests
    lines = [f"*Pending change requests* · {len(pending)}"]
    lines += [
        f"• {request_summary(r)} · {instant(r.proposed_at, '{date_short_pretty}')}"
        for r in pending[:MAX_REQUEST_LINES]
    ]
    if len(pending) > MAX_REQUEST_LINES:
        lines.append(f"…and {len(pending) - MAX_REQUEST_LINES} more")
    return section(pack(lines)[0], block_id=REQUESTS_BLOCK)
