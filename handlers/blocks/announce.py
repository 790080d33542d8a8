"""Channel announcements: one short line per history event that people should see."""

from __future__ import annotations

from domain.model import Contract, Event, EventKind
from domain.payments import FUNDED_NOTE, RELEASED_NOTE
from handlers.blocks.describe import (
    event_emoji,
    event_text,
    milestone_name,
    provider_workers,
)
from handlers.blocks.format import actor, instant, money, quote, user, users
from handlers.blocks.kit import context, section
from handlers.blocks.message import Message
from handlers.blocks.paying import noted

# Kinds that have their own message (or none): the request card, the work card, the
# contract card.
SILENT_KINDS = frozenset(
    {
        EventKind.REQUEST_PROPOSED,
        EventKind.WORK_SUBMITTED,
        EventKind.AGREEMENT_CLEARED,
        EventKind.CONTRACT_ENDING,  # the ending notice
        EventKind.MILESTONE_DISPUTED,  # the dispute card
    }
)
ANNOUNCED_KINDS = frozenset(
    {
        EventKind.CONTRACT_CREATED,
        EventKind.MILESTONE_ADDED,
        EventKind.MILESTONE_EDITED,
        EventKind.MILESTONE_DELETED,
        EventKind.TERMS_AGREED,
        EventKind.CONTRACT_ACTIVATED,
        EventKind.MILESTONE_FUNDED,
        EventKind.ESCROW_TOPPED_UP,
        EventKind.REQUEST_ACCEPTED,
        EventKind.REQUEST_DECLINED,
        EventKind.REQUEST_WITHDRAWN,
        EventKind.REQUEST_CANCELLED,
        EventKind.REQUEST_COUNTERED,
        EventKind.CHANGES_REQUESTED,
        EventKind.MILESTONE_RELEASED,
        EventKind.CONTRACT_ENDED,
        EventKind.SPLIT_PROPOSED,
        EventKind.DISPUTE_SETTLED,
        EventKind.MILESTONE_PARTLY_RELEASED,
        EventKind.BONUS_PAID,
        EventKind.REVIEW_TIME_ASKED,
        EventKind.REVIEW_EXTENDED,
        EventKind.REVIEW_TIME_DECLINED,
    }
)
_REQUEST_APPLIED = frozenset(
    {EventKind.MILESTONE_ADDED, EventKind.MILESTONE_EDITED, EventKind.MILESTONE_DELETED}
)
ANNOUNCE_BLOCK = "announce"


def build_announcement(
    contract: Contract, event: Event, *, record_only: bool = True
) -> Message | None:
    """The channel line for `event`, or None when it needs no announcement.

    Silent: request_proposed and work_submitted (their cards are the announcement),
    agreement_cleared, and milestone_added / _edited / _deleted that came from an
    accepted change request (the request card and `request_accepted` say it). Unknown
    kinds are silent too. `record_only`: see handlers.blocks.paying.
    """
    kind = event.kind
    if kind not in ANNOUNCED_KINDS:
        return None
    if kind in _REQUEST_APPLIED and event.request_number:
        return None
    text = _line(contract, event, record_only=record_only)
    if text is None:
        return None
    line = f"{event_emoji(kind)} {text}"
    return Message(
        text=line,
        blocks=[
            section(line, block_id=ANNOUNCE_BLOCK),
            context(f"Contract {contract.id}  ·  {instant(event.at)}"),
        ],
    )


def _line(contract: Contract, event: Event, *, record_only: bool) -> str | None:
    kind = event.kind
    data = event.data if isinstance(event.data, dict) else {}
    milestone = contract.milestone(event.milestone_number or 0)
    match kind:
        case EventKind.MILESTONE_FUNDED:
            workers = users(provider_workers(contract)) or "Provider"
            name = milestone_name(milestone) if milestone else f"*{event.milestone_number}*"
            amount = data.get("amount_minor")
            held = (
                f" ({money(amount, contract.currency)} in escrow)"
                if isinstance(amount, int) and not isinstance(amount, bool)
                else ""
            )
            return (
                f"{workers} milestone {name} is funded — you can start.{held}"
                f"{noted(FUNDED_NOTE, record_only=record_only)}"
            )
        case EventKind.MILESTONE_RELEASED:
            workers = users(provider_workers(contract)) or "Provider"
            name = milestone_name(milestone) if milestone else f"*{event.milestone_number}*"
            amount = data.get("amount_minor")
            paid = (
                money(amount, contract.currency)
                if isinstance(amount, int) and not isinstance(amount, bool)
                else "the escrow"
            )
            if data.get("automatic"):
                return (
                    f"{workers} milestone {name} is paid: {paid} released automatically "
                    "(the review period ended with no answer)."
                    f"{noted(RELEASED_NOTE, record_only=record_only)}"
                )
            approved = f"{user(event.actor)} approved, {paid} released"
            return (
                f"{workers} milestone {name} is paid: {approved}."
                f"{noted(RELEASED_NOTE, record_only=record_only)}"
            )
        case EventKind.CHANGES_REQUESTED:
            workers = users(provider_workers(contract)) or "the provider"
            name = milestone_name(milestone) if milestone else f"*{event.milestone_number}*"
            note = str(data.get("note") or "").strip()
            quoted = f"\n{quote(note, 1500)}" if note else ""
            return (
                f"{actor(event.actor)} asked {workers} for changes to milestone {name}. "
                f"The review clock stopped.{quoted}"
            )
        case EventKind.CONTRACT_ACTIVATED:
            return (
                event_text(contract, event, detailed=False)
                + f" Next: {user(contract.client_id)} funds the first milestone."
            )
        case EventKind.SPLIT_PROPOSED:
            other = (
                users(contract.provider_ids, conjunction="or")
                if event.actor == contract.client_id
                else user(contract.client_id)
            )
            return (
                event_text(contract, event, detailed=False)
                + f" {other}: *Agree to split* on the dispute card, or propose another."
            )
        case _:
            return event_text(contract, event, detailed=False, limit=1500)
