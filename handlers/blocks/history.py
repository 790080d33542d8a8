"""`/milestone history`: every event with who, when and what, newest last."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from slack_sdk.models.blocks import Block

from domain import record
from domain.model import Contract, Event
from handlers.blocks.describe import contract_title, event_emoji, event_text
from handlers.blocks.format import SECTION_LIMIT, instant, pack_counted, plural, shorten
from handlers.blocks.kit import context, section
from handlers.blocks.message import Message

MAX_HISTORY_SECTIONS = 20
MAX_HISTORY_CHARS = 40_000  # keeps the ephemeral message comfortably small
LINE_LIMIT = 1_000

HEAD_BLOCK = "history_head"
FOOTER_BLOCK = "history_footer"


def history_line(contract: Contract, event: Event, *, title: str | None = None) -> str:
    """One event; `title`: its milestone's title at the time (domain.record)."""
    when = instant(event.at, "{date_short} {time}")
    text = event_text(contract, event, detailed=True, limit=500, title=title)
    return shorten(f"{when}  {event_emoji(event.kind)} {text}", LINE_LIMIT)


def build_history(
    contract: Contract,
    events: Sequence[Event],
    *,
    now: datetime,
    total: int | None = None,
) -> Message:
    """The contract's history, oldest first, as an ephemeral message.

    `events` oldest first (as `queries.history` returns them): the whole history or its
    newest part, so each milestone is named as it was then (domain.record). When they
    don't all fit (20 sections of < 3000 chars, 40,000 chars in all) the latest ones are
    kept and the message says "showing the latest N of M". Pass `total` when `events` was already
    limited by the query, so M counts them all.
    """
    count = max(total or 0, len(events))
    titles = record.titles_then(contract, events)
    kept: list[str] = []
    size = 0
    for event in reversed(events):
        line = history_line(contract, event, title=titles.get(event.id))
        if size + len(line) + 1 > MAX_HISTORY_CHARS:
            break
        kept.append(line)
        size += len(line) + 1
    kept.reverse()
    packed = pack_counted(kept, limit=SECTION_LIMIT)
    if len(packed) > MAX_HISTORY_SECTIONS:
        packed = packed[-MAX_HISTORY_SECTIONS:]
    texts = [text for text, _ in packed]
    shown = sum(n for _, n in packed)
    scope = (
        f"showing the latest {shown:,} of {count:,} events"
        if shown < count
        else plural(count, "event")
    )
    blocks: list[Block] = [
        section(
            f":scroll: *History* · contract {contract.id} · *{contract_title(contract)}*\n"
            f"{scope}, oldest first",
            block_id=HEAD_BLOCK,
        )
    ]
    if not texts:
        blocks.append(section("_Nothing has happened yet._"))
    blocks += [section(text, block_id=f"history_{i}") for i, text in enumerate(texts)]
    blocks.append(
        context(
            f"Times are shown in your time zone  ·  as of {instant(now)}", block_id=FOOTER_BLOCK
        )
    )
    return Message(
        text=f"History of contract {contract.id}: {scope}.",
        blocks=blocks,
    )
