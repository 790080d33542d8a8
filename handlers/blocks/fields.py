"""Block ids and action ids of the modals' inputs.

Each input uses the same string as block id and action id, so a view submission's
`view["state"]["values"][ID][ID]` holds its value, and a field error is
`ack(response_action="errors", errors={ID: "…"})`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from domain.errors import DomainError, InvalidAmount
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
PROPOSE_FIELDS: Final = ("title", "amount", "due_date", "delete")
DELETE_OPTION: Final = "delete"

# Decline a request / request changes
REASON: Final = "reason"
NOTE: Final = "note"

_PROPOSE_BLOCK = re.compile(r"m(?P<number>[0-9]+)_(?P<field>title|amount|due_date|delete)")


def propose_block(number: int, field: str) -> str:
    """The id of milestone `number`'s `field` input in the propose-changes modal."""
    if field not in PROPOSE_FIELDS:
        raise ValueError(f"unknown propose field {field!r}")
    return f"m{number}_{field}"


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
    View.DECLINE: REASON,
    View.REQUEST_CHANGES: NOTE,
}

# Words in a refusal that say which input it is about, most specific first.
_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bagency name\b", re.I), "agency_name"),
    (re.compile(r"\bmanagers?\b", re.I), "managers"),
    (re.compile(r"\bcurrency\b|\bISO 4217\b", re.I), "currency"),
    (re.compile(r"\bdue date\b", re.I), "due_date"),
    (re.compile(r"\bamount\b", re.I), "amount"),
    (re.compile(r"\bdescription\b", re.I), "description"),
    (re.compile(r"\bmessage\b", re.I), "message"),
    (re.compile(r"\breason\b", re.I), "reason"),
    (re.compile(r"\bnote\b", re.I), "note"),
    (re.compile(r"\btitle\b", re.I), "title"),
    (re.compile(r"\bfreelancer\b", re.I), "freelancer"),
    (re.compile(r"\bclient\b", re.I), "client"),
)
_MILESTONE_NUMBER = re.compile(r"\b[Mm]ilestone ([0-9]+)\b")


def error_field(error: DomainError) -> str | None:
    """The domain field a refusal is about: `error.field`, else guessed from its words."""
    if error.field:
        return error.field
    if isinstance(error, InvalidAmount):
        return "amount"
    for pattern, field in _HINTS:
        if pattern.search(error.message):
            return field
    return None


def form_errors(
    callback_id: str,
    error: DomainError,
    *,
    present: set[str] | None = None,
    name_of: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """`{block_id: message}` for `ack(response_action="errors", errors=...)`.

    `present` is the set of block ids of the submitted view (`view["state"]["values"]`
    keys); an error is only put next to an input that exists, else next to the form's
    default input. In the propose-changes modal, "milestone 2 … amount" goes to
    `m2_amount`, a refusal about the new milestone to `new_*`.
    """
    field = error_field(error)
    block: str | None = None
    if callback_id == View.PROPOSE:
        number = _MILESTONE_NUMBER.search(error.message)
        short = {"amount_minor": "amount", "due": "due_date"}.get(field or "", field)
        if number is not None and short in PROPOSE_FIELDS:
            block = propose_block(int(number[1]), short)
        elif number is not None:
            block = propose_block(int(number[1]), "title")
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
