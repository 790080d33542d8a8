"""Finding things: what waits for a person (App Home, `/milestone list`), their
contracts in a list, and the choice of contract for a command typed without
`contract=` in a channel with several."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from slack_sdk.models.blocks import Block, ButtonElement, SectionBlock

from domain.model import Contract, ContractStatus
from domain.waiting import WaitingItem, WaitingKind
from handlers.blocks.contract import accept_button, fund_button, work_buttons
from handlers.blocks.describe import (
    CONTRACT_BADGE,
    SHORT_TITLE_LIMIT,
    contract_title,
    milestone_name,
    request_summary,
    role_label,
)
from handlers.blocks.ending import agree_to_split_button, ending_buttons
from handlers.blocks.format import clip, instant, money, plural, user, users
from handlers.blocks.impact import request_impact
from handlers.blocks.kit import MESSAGE_BLOCK_LIMIT, button, context, mrkdwn, section
from handlers.blocks.message import Message
from handlers.ids import Action
from handlers.payloads import ContractPick, ContractRef, MilestoneRef, RequestRef

BUTTON_VALUE_LIMIT = 2000  # Slack's limit on a button's value
MAX_LISTED = 15  # contracts in `/milestone list` (the rest: "and N more", on App Home)
MAX_WAITING_LINES = 4  # waiting items under one contract in the list
MAX_CHOICES = 20  # contracts offered as buttons


# --------------------------------------------------------------------------------------
# What waits, and for whom


def owed_by_text(item: WaitingItem, *, viewer: str | None) -> str:
    """ "you", or the people who owe it ("<@A> or <@B>")."""
    if viewer is not None and viewer in item.owed_by:
        return "you"
    return users(item.owed_by, conjunction="or") or "nobody"


def waiting_text(item: WaitingItem, *, viewer: str | None = None) -> str:
    """What the item asks for, as one line: an order to the viewer who owes it ("Fund
    milestone 2 *Build* ($2,500.00)."), else who owes what ("<@C> funds …")."""
    contract, milestone, request = item.contract, item.milestone, item.request
    mine = viewer is not None and viewer in item.owed_by
    who = owed_by_text(item, viewer=viewer)
    deadline = f" — automatic release {instant(item.due_at)}" if item.due_at else ""
    name = milestone_name(milestone, SHORT_TITLE_LIMIT) if milestone is not None else ""
    match item.kind:
        case WaitingKind.ADD_MILESTONES:
            return "Add the first milestone." if mine else f"{who} add the first milestone."
        case WaitingKind.AGREE:
            if mine:
                return "Agree to the terms — the contract starts once both sides agree."
            return f"{who} agrees to the terms."
        case WaitingKind.ANSWER_REQUEST if request is not None:
            summary = request_summary(request, limit=200)
            if mine:
                return f"Accept or decline change request {summary}."
            return f"{who} accepts or declines change request {summary}."
        case WaitingKind.REVIEW if milestone is not None:
            if mine:
                return f"Review milestone {name}: approve or request changes{deadline}."
            return f"{who} approves milestone {name} or requests changes{deadline}."
        case WaitingKind.FUND if milestone is not None:
            amount = money(milestone.amount_minor, contract.currency)
            if mine:
                return f"Fund milestone {name} ({amount})."
            return f"{who} funds milestone {name} ({amount})."
        case WaitingKind.WORK if milestone is not None:
            if mine:
                return f"Deliver milestone {name} and `/milestone submit` it."
            return f"{who} delivers milestone {name}."
        case WaitingKind.ENDING_NOTICE:
            until = f" by {instant(item.due_at)}" if item.due_at else ""
            if mine:
                return (
                    f"{user(contract.client_id)} ended the contract: accept the refund or "
                    f"dispute it{until} (after that the refund happens by itself)."
                )
            return f"{who} accepts the end-refund or disputes it{until}."
        case WaitingKind.EXTENSION_ASK if milestone is not None:
            days = milestone.extension_waiting or 0
            asked = plural(days, "more day")
            if mine:
                return f"{user(contract.client_id)} asks for {asked} to review milestone {name}."
            return f"{who} gives {asked} to review milestone {name}, or keeps the date."
        case WaitingKind.SPLIT_TO_AGREE if item.dispute is not None:
            offered = item.dispute.proposed_to_provider_minor or 0
            split = money(offered, contract.currency)
            about = f" of milestone {name}" if name else ""
            proposer = user(item.dispute.proposed_by or "")
            if mine:
                return f"{proposer} proposes a split{about}: {split} to the provider. Agree to it?"
            return f"{who} agrees to the split{about} ({split} to the provider)."
    # A kind this builder has no words for yet: its name, who owes it, what it is about.
    about = f" (milestone {name})" if name else ""
    if request is not None:
        about = f" (change request #{request.number})"
    return f"{str(item.kind).replace('_', ' ').capitalize()}{about}: {who}."


def waiting_buttons(
    item: WaitingItem, *, viewer: str, record_only: bool = True
) -> list[ButtonElement]:
    """The buttons that answer the item, for the person who owes it (none for others)."""
    if viewer not in item.owed_by:
        return []
    contract, milestone, request = item.contract, item.milestone, item.request
    match item.kind:
        case WaitingKind.AGREE:
            ref = ContractRef(contract_id=contract.id).dump()
            return [button("Agree to terms", Action.AGREE, ref, style="primary")]
        case WaitingKind.ANSWER_REQUEST if request is not None:
            ref = RequestRef(contract_id=contract.id, request_id=request.id).dump()
            impact = request_impact(contract, request)
            return [
                accept_button(
                    ref, top_up=impact.top_up, currency=contract.currency, record_only=record_only
                ),
                button("Decline", Action.DECLINE, ref),
            ]
        case WaitingKind.REVIEW if milestone is not None:
            return work_buttons(
                MilestoneRef(contract_id=contract.id, milestone_id=milestone.id).dump(),
                amount=money(milestone.amount_minor, contract.currency),
                number=milestone.number,
                provider="the agency" if contract.is_agency else "the freelancer",
                record_only=record_only,
            )
        case WaitingKind.FUND if milestone is not None:
            return [fund_button(contract, milestone, record_only=record_only)]
        case WaitingKind.EXTENSION_ASK if milestone is not None:
            ref = MilestoneRef(contract_id=contract.id, milestone_id=milestone.id).dump()
            days = plural(milestone.extension_waiting or 0, "day")
            return [
                button(f"Give more time (+{days})", Action.GIVE_MORE_TIME, ref, style="primary"),
                button("Keep the date", Action.KEEP_REVIEW_DATE, ref),
            ]
        case WaitingKind.ENDING_NOTICE if milestone is not None:
            held = money(milestone.still_held_minor, contract.currency)
            return ending_buttons(contract, milestone, held)
        case WaitingKind.SPLIT_TO_AGREE if item.dispute is not None:
            return [agree_to_split_button(contract, item.dispute)]
    return []


def contract_line(contract: Contract) -> str:
    """E.g. "*Website redesign*  ·  contract 12  ·  <#C123>"."""
    return (
        f"*{contract_title(contract, SHORT_TITLE_LIMIT)}*  ·  contract {contract.id}  ·  "
        f"<#{contract.channel_id}>"
    )


def badge(contract: Contract) -> str:
    return CONTRACT_BADGE.get(contract.status, contract.status.value.capitalize())


# --------------------------------------------------------------------------------------
# `/milestone list`


def build_contract_list(
    user_id: str,
    contracts: Sequence[Contract],
    waiting: Mapping[int, Sequence[WaitingItem]],
    *,
    total: int,
    now: datetime,
) -> Message:
    """The person's contracts, open first (as `queries.contracts_of_user` orders them),
    each with its state, what waits and for whom, and its channel; `total`: how many
    they have in all (those past `MAX_LISTED` are counted, and are on App Home).
    `waiting`: contract id → everything anyone owes on it (domain.waiting.items_of)."""
    shown = list(contracts[:MAX_LISTED])
    head = (
        f":card_index_dividers: *Your contracts* · {plural(total, 'contract')}, open first"
        if total
        else ":card_index_dividers: *Your contracts*"
    )
    blocks: list[Block] = [section(head, block_id="list_head")]
    if not shown:
        blocks.append(
            section("You're not a party to any contract yet. Start one with `/milestone new`.")
        )
    for contract in shown:
        facts = [badge(contract), f"you're the {role_label(contract, user_id)}"]
        lines = [contract_line(contract), "  ·  ".join(facts)]
        items = list(waiting.get(contract.id, ()))
        if contract.status == ContractStatus.CLOSED:
            lines.append("Closed: read-only.")
        elif not items:
            lines.append("Nothing waits for anyone.")
        for item in items[:MAX_WAITING_LINES]:
            mark = ":point_right:" if user_id in item.owed_by else ":hourglass_flowing_sand:"
            lines.append(f"{mark} {waiting_text(item, viewer=user_id)}")
        if len(items) > MAX_WAITING_LINES:
            lines.append(f"…and {len(items) - MAX_WAITING_LINES} more waiting.")
        blocks.append(section("\n".join(lines), block_id=f"list_contract_{contract.id}"))
    if total > len(shown):
        blocks.append(
            context(
                f"…and {total - len(shown)} more. Every contract is on the app's Home tab.",
                block_id="list_more",
            )
        )
    blocks.append(context(f"As of {instant(now)}", block_id="list_footer"))
    text = f"Your contracts: {plural(total, 'contract')}."
    return Message(text=text, blocks=blocks[:MESSAGE_BLOCK_LIMIT])


# --------------------------------------------------------------------------------------
# Which contract? (a command typed without `contract=` in a channel with several)


def build_contract_choice(text: str, user_id: str, contracts: Sequence[Contract]) -> Message:
    """Offer `contracts` for the command `text` (as typed): one button each, which runs
    it again on that contract for `user_id` only. A text too long to travel in a button
    gets no button: the person adds `contract=<id>` themselves."""
    typed = clip(f"/milestone {text}", 200, one_line=True)
    blocks: list[Block] = [
        section(
            f"This channel has several open contracts. Which one is `{typed}` for?",
            block_id="choice_head",
        )
    ]
    for contract in contracts[:MAX_CHOICES]:
        role = contract.role_of(user_id)
        facts = [badge(contract)]
        if role is not None:
            facts.append(f"you're the {role_label(contract, user_id)}")
        line = f"{contract_line(contract)}\n{'  ·  '.join(facts)}"
        value = ContractPick(text=text[:1_900], contract_id=contract.id, user_id=user_id).dump()
        accessory = None
        if len(text) <= 1_900 and len(value) <= BUTTON_VALUE_LIMIT:
            accessory = button(f"Use contract {contract.id}", Action.CHOOSE_CONTRACT, value)
        else:
            line += f"\nAdd `contract={contract.id}` to the command."
        blocks.append(
            SectionBlock(text=mrkdwn(line), accessory=accessory, block_id=f"choice_{contract.id}")
        )
    blocks.append(
        context("Or type the command again with `contract=&lt;id&gt;`.", block_id="choice_footer")
    )
    listed = ", ".join(f"{c.id}" for c in contracts[:MAX_CHOICES])
    return Message(
        text=f"This channel has several open contracts ({listed}): which one do you mean?",
        blocks=blocks,
    )
