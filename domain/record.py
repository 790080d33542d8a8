"""The record as it was: each event with the milestone title it had at the time.

Events that name a milestone carry its title then: `data["title"]` (written by
`Tx.event` since the second wave), or the `after` / `before` fields of an add, edit or
delete. Events written before carry no title; for them the title is found by replaying
the contract's title edits backwards from the current titles: an edit that renamed
"Design" to "Design v2" means every event before it knew the milestone as "Design".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domain.model import Contract, Event


def _fields(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _title(fields: Mapping[str, Any]) -> str | None:
    value = fields.get("title")
    return value if isinstance(value, str) and value else None


def titles_then(contract: Contract, events: Sequence[Event]) -> dict[int, str]:
    """Event id → the title its milestone had when the event happened, for the events
    that name a milestone. `events`: the contract's latest events, oldest first (the
    whole history, or its newest part: the replay starts from now). An edit of the
    title counts as happening under its new title (its `before → after` shows both)."""
    current = {m.number: m.title for m in contract.milestones}
    found: dict[int, str] = {}
    for event in reversed(events):
        number = event.milestone_number
        if number is None:
            continue
        data = event.data if isinstance(event.data, Mapping) else {}
        before, after = _fields(data, "before"), _fields(data, "after")
        then = _title(after) or _title(data) or _title(before) or current.get(number)
        if then is not None:
            found[event.id] = then
        # Before this event the milestone had its `before` title (an edit) or the one
        # the event saw (an event that carries it).
        earlier = _title(before) or _title(data)
        if earlier is not None:
            current[number] = earlier
    return found
