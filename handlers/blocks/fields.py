"""Block ids and action ids of the modals' inputs.

Each input uses the same string as block id and action id, so a view submission's
`view["state"]["values"][ID][ID]` holds its value, and a field error is
`ack(response_action="errors", errors={ID: "…"})`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from domain.errors import DomainError
from handlers.blocks.format import said_plain
from handlers.ids import View

# New contract
TITLE: Final = "title"
CLIENT: Final = "client"
FREELANCER: Final = "freelancer"
AGENCY_NAME: Final = "agency_name"
MANAGERS: Final = "managers"
MEMBERS: Final = "members"
CURRENCY: Final = "currency"

# Add / edit milestone (TITLE too)
AMOUNT: Final = "amount"
DUE_DATE: Final = "due_date"
DESCRIPTION: Final = "description"
MESSAGE: Final = "message"

# Propose changes: per milestone `m<n>_<field>` (see `propose_block`), plus a new one
NEW_TITLE: Final = "new_title"
NEW_AMOUNT: Final = "new_amount"
NEW_DUE_DATE: Final = "new_due_date"
NEW_DESCRIPTION: Final = "new_description"
PROPOSE_FIELDS: Final = ("title", "amount", "due_date", "description", "delete")
DELETE_OPTION: Final = "delete"
# The forms that list milestones this way: propose changes, a counter-offer, a revision.
PROPOSE_VIEWS: Final = frozenset({View.PROPOSE, View.COUNTER, View.REVISE})
NEW_FIELDS: Final = ("title", "amount", "due_date", "description")

# Decline a request / request changes
REASON: Final = "reason"
NOTE: Final = "note"

_PROPOSE_BLOCK = re.compile(
    r"m(?P<number>[0-9]+)_(?P<field>title|amount|due_date|description|delete)"
)


def propose_block(number: int, field: str) -> str:
    """The id of milestone `number`'s `field` input in the propose-changes modal."""
    if field not in PROPOSE_FIELDS:
        raise ValueError(f"unknown propose field {field!r}")
    return f"m{number}_{field}"


def new_block(slot: int, field: str) -> str:
    """The id of the `slot`-th new milestone's `field` input (`new_title`, then
    `new2_title`, …: a form prefilled with a request that adds several)."""
    if field not in NEW_FIELDS:
        raise ValueError(f"unknown new-milestone field {field!r}")
    return f"new_{field}" if slot == 1 else f"new{slot}_{field}"


def parse_propose_block(block_id: str) -> tuple[int, str] | None:
    """`"m2_amount"` → `(2, "amount")`; None for any other id."""
    match = _PROPOSE_BLOCK.fullmatch(block_id)
    if match is None:
        return None
    return int(match["number"]), match["field"]


# Domain field names (DomainError.field, Milestone.fields() keys) → input ids.
FIELD_BLOCKS: Final[dict[str, str]] = {
    "title": TITLE,
    "amount": AMOUNT,
    "amount_minor": AMOUNT,
    "due_date": DUE_DATE,
    "due": DUE_DATE,
    "description": DESCRIPTION,
    "message": MESSAGE,
    "reason": REASON,
    "note": NOTE,
    "client": CLIENT,
    "freelancer": FREELANCER,
    "agency_name": AGENCY_NAME,
    "agency name": AGENCY_NAME,
    "managers": MANAGERS,
    "members": MEMBERS,
    "currency": CURRENCY,
}

# The input to show an error next to when nothing more precise is known.
DEFAULT_BLOCK: Final[dict[str, str]] = {
    View.NEW_CONTRACT: TITLE,
    View.ADD_MILESTONE: TITLE,
    View.EDIT_MILESTONE: TITLE,
    View.PROPOSE: NEW_TITLE,
    View.COUNTER: NEW_TITLE,
    View.REVISE: NEW_TITLE,
    View.DECLINE: REASON,
    View.REQUEST_CHANGES: NOTE,
    View.DISPUTE: REASON,
}


def form_errors(
    callback_id: str,
    error: DomainError,
    *,
    present: set[str] | None = None,
    name_of: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """`{block_id: message}` for `ack(response_action="errors", errors=...)`: the refusal
    next to the input it names (`error.field`, and in the propose-changes modal
    `error.milestone`: milestone 2's amount is `m2_amount`, the new milestone's `new_*`).

    `present` is the set of block ids of the submitted view (`view["state"]["values"]`
    keys); an error is only put next to an input that exists, else next to the form's
    default input. People are named with `name_of` (a form shows plain text).
    """
    field = error.field
    block: str | None = None
    if callback_id in PROPOSE_VIEWS:
        short = {"amount_minor": "amount", "due": "due_date"}.get(field or "", field)
        if error.milestone is not None:
            wanted = short if short in PROPOSE_FIELDS else "title"
            block = propose_block(error.milestone, wanted or "title")
        elif short in ("title", "amount", "due_date", "description"):
            block = f"new_{short}"
        elif short == "message":
            block = MESSAGE
    elif field is not None:
        block = FIELD_BLOCKS.get(field)
    default = DEFAULT_BLOCK.get(callback_id, TITLE)
    if block is None or (present is not None and block not in present):
        block = default
    return {block: said_plain(error.said, name_of=name_of)}
