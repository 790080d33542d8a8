"""App Home: what waits for this person, their contracts, and recent activity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from slack_sdk.models.blocks import Block, HeaderBlock
from slack_sdk.models.views import View

from domain.model import Contract, ContractStatus, Event
from domain.snapshot import ContractSnapshot
from handlers.blocks.contract import card_buttons
from handlers.blocks.describe import (
    CONTRACT_BADGE,
    SHORT_TITLE_LIMIT,
    contract_title,
    event_emoji,
    event_text,
    next_text,
    role_label,
)
from handlers.blocks.format import instant, money, shorten
from handlers.blocks.kit import VIEW_BLOCK_LIMIT, actions, context, divider, plain, section

MAX_WAITING = 10
MAX_CONTRACTS = 20
MAX_RECENT = 10


# Why a channel refuses the bot's messages (Slack's error code), in words.
UNREACHABLE = {
    "is_archived": "the channel was archived",
    "is_inactive": "the channel was archived",
    "not_in_channel": "I was removed from the channel",
    "channel_not_found": "I can't find the channel any more",
}


def build_home(
    user_id: str,
    items: Sequence[ContractSnapshot],
    recent: Sequence[tuple[Contract, Event]],
    *,
    now: datetime,
    unreachable: Mapping[str, str] | None = None,
) -> View:
    """The Home tab of `user_id`.

    `items`: snapshots of the person's contracts (open first, as
    `queries.contracts_of_user` orders them); `recent`: (contract, event) pairs, newest
    first. "Waiting for you" lists items whose next action this person owes, with the
    card's buttons. `unreachable`: channels that refuse the bot's messages for now
    (channel id → Slack's reason): their contracts are told about here, where the
    person can still be reached. At most 100 blocks.
    """
    waiting = [s for s in items if user_id in s.next_action.owed_by][:MAX_WAITING]
    blocks: list[Block] = [
        section(
            f"*Your milestone contracts*  ·  {instant(now, '{date_short_pretty} at {time}')}\n"
            "Create one in a channel with `/milestone new`; `/milestone help` lists every "
            "command."
        ),
    ]
    for snap in items:
        reason = (unreachable or {}).get(snap.contract.channel_id)
        if reason is not None and snap.contract.status != ContractStatus.CLOSED:
            blocks.append(_unreachable(snap.contract, reason))
    blocks.append(HeaderBlock(text=plain("Waiting for you")))
    if waiting:
        for snap in waiting:
            contract = snap.contract
            blocks.append(
                section(
                    f"*{contract_title(contract, SHORT_TITLE_LIMIT)}*  ·  contract {contract.id}"
                    f"  ·  <#{contract.channel_id}>\n:point_right: "
                    f"{next_text(snap, viewer=user_id)}",
                    block_id=f"home_wait_{contract.id}",
                )
            )
            buttons = card_buttons(snap, general=False, requests=True)
            if buttons:
                blocks.append(actions(f"home_wait_actions_{contract.id}", buttons))
    else:
        blocks.append(context(":sparkles: Nothing needs you right now."))
    blocks.append(divider())
    blocks.append(HeaderBlock(text=plain("Your contracts")))
    budget = VIEW_BLOCK_LIMIT - len(blocks) - 3  # header, recent activity, overflow note
    listed = list(items[: min(MAX_CONTRACTS, budget)])
    for snap in listed:
        blocks.append(_contract_summary(snap, user_id))
    if not items:
        blocks.append(context("No contracts yet. Type `/milestone new` in a channel to start one."))
    elif len(items) > len(listed):
        blocks.append(context(f"…and {len(items) - len(listed)} more."))
    blocks.append(HeaderBlock(text=plain("Recent activity")))
    lines = [
        shorten(
            f"{instant(event.at, '{date_short_pretty} {time}')}  {event_emoji(event.kind)} "
            f"*{contract_title(contract, 40)}*: "
            f"{event_text(contract, event, detailed=False, limit=120).splitlines()[0]}",
            400,
        )
        for contract, event in list(recent)[:MAX_RECENT]
    ]
    blocks.append(section("\n".join(lines)) if lines else context("No activity yet."))
    return View(type="home", blocks=blocks[:VIEW_BLOCK_LIMIT])


def _unreachable(contract: Contract, reason: str) -> Block:
    why = UNREACHABLE.get(reason, "Slack refuses my messages there")
    return section(
        f":warning: I can't post in <#{contract.channel_id}> right now: {why}. Contract "
        f"{contract.id} (*{contract_title(contract, SHORT_TITLE_LIMIT)}*) goes on here: what "
        "needs you is below, with its buttons. Invite me back (`/invite @milestone-bot`) or "
        "unarchive the channel, and the cards and announcements that waited are posted.",
        block_id=f"home_unreachable_{contract.id}",
    )


def _contract_summary(snap: ContractSnapshot, user_id: str) -> Block:
    contract = snap.contract
    balance = money(snap.escrow.balance_minor, contract.currency)
    total = money(contract.total_minor, contract.currency)
    facts = [
        CONTRACT_BADGE[contract.status],
        f"you're the {role_label(contract, user_id)}",
        f"total {total}",
    ]
    if contract.status != ContractStatus.NEGOTIATING:
        facts.append(f"{balance} in escrow")
    return section(
        f"*{contract_title(contract, SHORT_TITLE_LIMIT)}*  ·  contract {contract.id}  ·  "
        f"<#{contract.channel_id}>\n{'  ·  '.join(facts)}\n"
        f"Next: {next_text(snap, viewer=user_id)}",
        block_id=f"home_contract_{contract.id}",
    )
