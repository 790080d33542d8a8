"""App Home: what waits for this person, their contracts, and recent activity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from slack_sdk.models.blocks import Block, HeaderBlock
from slack_sdk.models.views import View

from domain import record
from domain.model import Contract, ContractStatus, Event
from domain.snapshot import ContractSnapshot
from domain.waiting import WaitingItem, waiting_on
from handlers.blocks.describe import (
    SHORT_TITLE_LIMIT,
    contract_title,
    event_emoji,
    event_text,
    next_text,
    role_label,
)
from handlers.blocks.finding import badge, contract_line, waiting_buttons, waiting_text
from handlers.blocks.format import instant, money, shorten
from handlers.blocks.kit import (
    VIEW_BLOCK_LIMIT,
    actions,
    button,
    context,
    divider,
    plain,
    section,
)
from handlers.blocks.paying import payment_text
from handlers.ids import Action
from handlers.payloads import HomePage

WAITING_PER_PAGE = 20  # each: a section and its buttons
CONTRACTS_PER_PAGE = 20
MAX_RECENT = 10
MAX_UNREACHABLE = 5


# Why a channel refuses the bot's messages (Slack's error code), in words.
UNREACHABLE = {
    "is_archived": "the channel was archived",
    "is_inactive": "the channel was archived",
    "not_in_channel": "I was removed from the channel",
    "channel_not_found": "I can't find the channel any more",
    # Distribution, Slack Connect (bot.delivery.NO_BOT_IN_CHANNEL).
    "no_installed_bot_in_channel": "none of the workspaces that installed me has me in it",
}


def build_home(
    user_id: str,
    items: Sequence[ContractSnapshot],
    recent: Sequence[tuple[Contract, Event]],
    *,
    now: datetime,
    unreachable: Mapping[str, str] | None = None,
    waiting: Sequence[WaitingItem] | None = None,
    page: int = 0,
    contracts_total: int | None = None,
    record_only: bool = True,
) -> View:
    """The Home tab of `user_id`, page `page` (0 is the first).

    `waiting`: every item this person owes (domain.waiting.waiting_for, most urgent
    first), each with its buttons: several on one contract are several items. Without
    it, the items of `items` are used. `items`: snapshots of this page's contracts (open
    first, as `queries.contracts_of_user` orders them), of `contracts_total` in all.
    Each page shows up to `WAITING_PER_PAGE` waiting items and `CONTRACTS_PER_PAGE`
    contracts, with Previous / Next buttons (`HomePage`) when there are more.
    `recent`: (contract, event) pairs, newest first (first page only). `unreachable`:
    channels that refuse the bot's messages for now (channel id → Slack's reason):
    their contracts are told about here, where the person can still be reached. At
    most 100 blocks. `record_only` (`PAYMENTS=ledger`): escrow is said to be a record
    only (handlers.blocks.paying); else a milestone's pending payment shows.
    """
    if waiting is None:
        waiting = [
            item
            for snap in items
            for item in waiting_on(snap.contract, snap.pending_requests, now=now)
            if user_id in item.owed_by
        ]
    total = len(items) if contracts_total is None else contracts_total
    pages = max(1, -(-len(waiting) // WAITING_PER_PAGE), -(-total // CONTRACTS_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = list(waiting[page * WAITING_PER_PAGE : (page + 1) * WAITING_PER_PAGE])
    where = f"  ·  page {page + 1} of {pages}" if pages > 1 else ""
    blocks: list[Block] = [
        section(
            f"*Your milestone contracts*  ·  {instant(now, '{date_short_pretty} at {time}')}"
            f"{where}\nCreate one in a channel with `/milestone new`; `/milestone list` "
            "lists your contracts and `/milestone help` every command."
        ),
    ]
    told = 0
    for snap in items:
        reason = (unreachable or {}).get(snap.contract.channel_id)
        if reason is not None and snap.contract.status != ContractStatus.CLOSED:
            if told < MAX_UNREACHABLE:
                blocks.append(_unreachable(snap.contract, reason))
            told += 1
    waiting_head = f"Waiting for you ({len(waiting)})" if waiting else "Waiting for you"
    blocks.append(HeaderBlock(text=plain(waiting_head)))
    for index, item in enumerate(shown, start=page * WAITING_PER_PAGE):
        blocks.append(
            section(
                f"{contract_line(item.contract)}\n:point_right: "
                f"{waiting_text(item, viewer=user_id)}",
                block_id=f"home_wait_{index}",
            )
        )
        buttons = waiting_buttons(item, viewer=user_id, record_only=record_only)
        if buttons:
            blocks.append(actions(f"home_wait_actions_{index}", buttons))
    if not waiting:
        blocks.append(context(":sparkles: Nothing needs you right now."))
    elif len(waiting) > len(shown):
        first = page * WAITING_PER_PAGE + 1
        blocks.append(
            context(f"Showing {first}–{first + len(shown) - 1} of {len(waiting)} waiting items.")
        )
    blocks.append(divider())
    contracts_head = f"Your contracts ({total})" if total else "Your contracts"
    blocks.append(HeaderBlock(text=plain(contracts_head)))
    listed = list(items[:CONTRACTS_PER_PAGE])
    for snap in listed:
        blocks.append(_contract_summary(snap, user_id, record_only=record_only))
    if not total:
        blocks.append(context("No contracts yet. Type `/milestone new` in a channel to start one."))
    elif total > len(listed):
        first = page * CONTRACTS_PER_PAGE + 1
        blocks.append(
            context(
                f"Showing {first}–{first + len(listed) - 1} of {total} contracts, open first."
                if listed
                else f"{total} contracts in all: see the earlier pages."
            )
        )
    if page == 0:
        blocks.append(HeaderBlock(text=plain("Recent activity")))
        blocks.append(_recent(recent))
    if pages > 1:
        blocks.append(_pager(page, pages))
    return View(type="home", blocks=blocks[:VIEW_BLOCK_LIMIT])


def _recent(recent: Sequence[tuple[Contract, Event]]) -> Block:
    """The newest events, each milestone named as it was then (domain.record)."""
    shown = list(recent)[:MAX_RECENT]
    by_contract: dict[int, tuple[Contract, list[Event]]] = {}
    for contract, event in reversed(shown):  # oldest first, per contract
        by_contract.setdefault(contract.id, (contract, []))[1].append(event)
    titles: dict[int, str] = {}
    for contract, events in by_contract.values():
        titles.update(record.titles_then(contract, events))
    lines = [
        shorten(
            f"{instant(event.at, '{date_short_pretty} {time}')}  {event_emoji(event.kind)} "
            f"*{contract_title(contract, 40)}*: "
            + event_text(
                contract, event, detailed=False, limit=120, title=titles.get(event.id)
            ).splitlines()[0],
            400,
        )
        for contract, event in shown
    ]
    return section("\n".join(lines)) if lines else context("No activity yet.")


def _pager(page: int, pages: int) -> Block:
    buttons = []
    if page > 0:
        buttons.append(button("← Previous", Action.HOME_PREVIOUS, HomePage(page=page - 1).dump()))
    if page + 1 < pages:
        buttons.append(button("Next →", Action.HOME_NEXT, HomePage(page=page + 1).dump()))
    return actions("home_pages", buttons)


def _unreachable(contract: Contract, reason: str) -> Block:
    why = UNREACHABLE.get(reason, "Slack refuses my messages there")
    return section(
        f":warning: I can't post in <#{contract.channel_id}> right now: {why}. Contract "
        f"{contract.id} (*{contract_title(contract, SHORT_TITLE_LIMIT)}*) goes on here: what "
        "needs you is below, with its buttons. Invite me back (`/invite @milestone-bot`) or "
        "unarchive the channel, and the cards and announcements that waited are posted.",
        block_id=f"home_unreachable_{contract.id}",
    )


def _contract_summary(snap: ContractSnapshot, user_id: str, *, record_only: bool) -> Block:
    contract = snap.contract
    balance = money(snap.escrow.balance_minor, contract.currency)
    total = money(contract.total_minor, contract.currency)
    facts = [
        badge(contract),
        f"you're the {role_label(contract, user_id)}",
        f"total {total}",
    ]
    if contract.status != ContractStatus.NEGOTIATING:
        held = " (recorded; the bot holds no money)" if record_only else ""
        facts.append(f"{balance} in escrow{held}")
    paying = [
        f"milestone {m.number}: {words}"
        for m in contract.live_milestones
        if (words := payment_text(snap.payments.get(m.id), snap.top_ups_owed.get(m.id)))
    ]
    facts += paying
    return section(
        f"*{contract_title(contract, SHORT_TITLE_LIMIT)}*  ·  contract {contract.id}  ·  "
        f"<#{contract.channel_id}>\n{'  ·  '.join(facts)}\n"
        f"Next: {next_text(snap, viewer=user_id)}",
        block_id=f"home_contract_{contract.id}",
    )
