"""A change request's message: the changes as before → after, the impact, the decision."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from domain.model import ChangeRequest, Contract, RequestStatus, Role
from handlers.blocks.contract import accept_button
from handlers.blocks.describe import (
    REQUEST_BADGE,
    SHORT_TITLE_LIMIT,
    change_detail,
    contract_title,
    provider_speakers,
)
from handlers.blocks.format import (
    actor,
    clip,
    due_iso,
    instant,
    money,
    pack_counted,
    plural,
    quote,
    signed_money,
    user,
)
from handlers.blocks.impact import Impact, request_impact
from handlers.blocks.kit import actions, button, context, section
from handlers.blocks.message import Message
from handlers.ids import Action
from handlers.payloads import RequestRef

MAX_CHANGE_SECTIONS = 25

HEAD_BLOCK = "request_head"
MESSAGE_BLOCK = "request_message"
IMPACT_BLOCK = "request_impact"
ACTIONS_BLOCK = "request_actions"
WHO_BLOCK = "request_who"
OUTCOME_BLOCK = "request_outcome"


def build_request_card(
    contract: Contract,
    request: ChangeRequest,
    *,
    total_before: int | None = None,
    top_up_now: int | None = None,
    record_only: bool = True,
) -> Message:
    """One message per change request, updated in place when it is decided.

    The impact (new contract total, escrow top-up on accept, moved due dates) is
    computed from `request.changes` against the contract as it stands; pass
    `total_before` / `top_up_now` to override (see `request_impact`). The request's
    `changes` must be loaded. Pending: Accept / Decline / Withdraw; afterwards the
    outcome and no buttons. `record_only`: see handlers.blocks.paying.
    """
    pending = request.status == RequestStatus.PENDING
    revision = f"  ·  replaces #{request.revision_of}" if request.revision_of else ""
    if request.counter_of:
        revision += f"  ·  counter-offer to change request #{request.counter_of}"
    blocks: list[Block] = [
        section(
            f":memo: *Change request #{request.number}*  ·  {REQUEST_BADGE[request.status]}\n"
            f"Contract {contract.id} · *{contract_title(contract, SHORT_TITLE_LIMIT)}*  ·  "
            f"proposed by {user(request.proposed_by)} {instant(request.proposed_at)}{revision}",
            block_id=HEAD_BLOCK,
        )
    ]
    if (request.message or "").strip():
        blocks.append(section(quote(request.message or "", 2900), block_id=MESSAGE_BLOCK))
    details = [change_detail(change, contract) for change in request.changes]
    packed = pack_counted(details, sep="\n\n")
    texts = [text for text, _ in packed[: MAX_CHANGE_SECTIONS - 1]]
    if len(packed) > MAX_CHANGE_SECTIONS:
        shown = sum(n for _, n in packed[: MAX_CHANGE_SECTIONS - 1])
        texts.append(f"…and {plural(len(details) - shown, 'more change')}.")
    elif len(packed) == MAX_CHANGE_SECTIONS:
        texts.append(packed[-1][0])
    blocks += [section(text, block_id=f"request_changes_{i}") for i, text in enumerate(texts)]
    if pending:
        impact = request_impact(contract, request, total_before=total_before, top_up_now=top_up_now)
        blocks.append(section(_impact_text(contract, impact), block_id=IMPACT_BLOCK))
        ref = RequestRef(contract_id=contract.id, request_id=request.id).dump()
        blocks.append(
            actions(
                ACTIONS_BLOCK,
                [
                    accept_button(
                        ref,
                        top_up=impact.top_up,
                        currency=contract.currency,
                        record_only=record_only,
                    ),
                    button("Decline", Action.DECLINE, ref),
                    button("Suggest changes", Action.COUNTER, ref),
                    button("Withdraw", Action.WITHDRAW, ref),
                    button("Revise", Action.REVISE, ref),
                ],
            )
        )
        withdrawer = (
            provider_speakers(contract)
            if contract.role_of(request.proposed_by) == Role.MANAGER
            else user(request.proposed_by)
        )
        blocks.append(
            context(
                f"{_answerers(contract, request)} accepts, declines or suggests changes  ·  "
                f"{withdrawer} can withdraw or revise",
                block_id=WHO_BLOCK,
            )
        )
    else:
        blocks.append(section(_outcome_text(request), block_id=OUTCOME_BLOCK))
    return Message(text=_fallback(contract, request), blocks=blocks)


def _impact_text(contract: Contract, impact: Impact) -> str:
    currency = contract.currency
    lines = ["*If accepted*"]
    if impact.total_delta:
        lines.append(
            f"Contract total: {money(impact.total_before, currency)} → "
            f"*{money(impact.total_after, currency)}* "
            f"({signed_money(impact.total_delta, currency)})"
        )
    else:
        lines.append(f"Contract total unchanged: {money(impact.total_before, currency)}")
    if impact.top_up > 0:
        numbers = ", ".join(str(n) for n in impact.top_up_milestones)
        which = f" (milestone {numbers} is already funded)" if numbers else ""
        lines.append(
            f":heavy_dollar_sign: Escrow top-up at once: *{money(impact.top_up, currency)}*{which}"
        )
    for number, old, new in impact.moved_dates[:10]:
        lines.append(f":calendar: Milestone {number} due: ~{due_iso(old)}~ → *{due_iso(new)}*")
    if len(impact.moved_dates) > 10:
        lines.append(f"…and {plural(len(impact.moved_dates) - 10, 'more due date')} move")
    return "\n".join(lines)


def _answerers(contract: Contract, request: ChangeRequest) -> str:
    """Who answers it: the client, or the provider side for the client's counter-offer."""
    if contract.role_of(request.proposed_by) == Role.CLIENT:
        return provider_speakers(contract)
    return user(contract.client_id)


def _outcome_text(request: ChangeRequest) -> str:
    when = f" {instant(request.decided_at)}" if request.decided_at else ""
    by = f" by {actor(request.decided_by)}" if request.decided_by else ""
    status = request.status
    if status == RequestStatus.ACCEPTED:
        return f":white_check_mark: *Accepted*{by}{when}. The changes are applied."
    if status == RequestStatus.DECLINED:
        reason = request.decline_reason or ""
        text = f":x: *Declined*{by}{when}."
        return text + (f"\n{quote(reason, 2700)}" if reason.strip() else "")
    if status == RequestStatus.WITHDRAWN and request.replaced_by:
        return (
            f":leftwards_arrow_with_hook: *Withdrawn*{by}{when}: revised as change request "
            f"#{request.replaced_by}."
        )
    if status == RequestStatus.WITHDRAWN:
        return f":leftwards_arrow_with_hook: *Withdrawn*{by}{when}. Nothing changed."
    if status == RequestStatus.COUNTERED:
        number = f" as change request #{request.replaced_by}" if request.replaced_by else ""
        return (
            f":arrows_counterclockwise: *Countered*{by}{when}{number}. Nothing changed "
            "unless that one is accepted."
        )
    reason = clip(request.cancel_reason or "", 2500)
    because = f": {reason}" if reason else "."
    return f":no_entry_sign: *Cancelled*{when}{because} Nothing changed."


def _fallback(contract: Contract, request: ChangeRequest) -> str:
    title = contract_title(contract, SHORT_TITLE_LIMIT)
    if request.status == RequestStatus.PENDING:
        return (
            f"Change request #{request.number} on contract {contract.id} ({title}) from "
            f"{user(request.proposed_by)}: {plural(len(request.changes), 'change')}, "
            f"waiting for {_answerers(contract, request)}."
        )
    return (
        f"Change request #{request.number} on contract {contract.id} ({title}) was "
        f"{request.status.value}."
    )
