"""`milestone-bot export`: contracts as the JSON of interface.md (field names fixed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import ledger, queries, record
from domain.model import Contract, Event, LedgerKind, Milestone, Role

_ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)")


def _instant(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_contracts(session: Session, contract_id: int | None = None) -> dict[str, Any]:
    if contract_id is not None:
        ids = [queries.load_contract(session, contract_id).id]
    else:
        ids = list(session.scalars(select(Contract.id).order_by(Contract.id)))
    return {"contracts": [export_contract(session, cid) for cid in ids]}


def export_contract(session: Session, contract_id: int) -> dict[str, Any]:
    contract = queries.load_contract(session, contract_id)
    entries = ledger.entries(session, contract.id)
    escrow = ledger.summarize(entries)
    numbers = {m.id: m.number for m in contract.milestones}
    return {
        "id": contract.id,
        "title": contract.title,
        "team_id": contract.team_id,
        "channel_id": contract.channel_id,
        "currency": contract.currency,
        "status": contract.status.value,
        "client_id": contract.client_id,
        "freelancer_id": contract.freelancer_id,
        "agency": (
            {
                "name": contract.agency_name,
                "manager_ids": contract.ids_with_role(Role.MANAGER),
                "member_ids": contract.ids_with_role(Role.MEMBER),
            }
            if contract.is_agency
            else None
        ),
        "created_at": _instant(contract.created_at),
        "milestones": [_milestone(m) for m in contract.milestones],
        "change_requests": [
            {
                "number": r.number,
                "status": r.status.value,
                "proposed_by": r.proposed_by,
                "proposed_at": _instant(r.proposed_at),
                "decided_by": r.decided_by,
                "decided_at": _instant(r.decided_at),
                "message": r.message,
                "decline_reason": r.decline_reason,
                "cancel_reason": r.cancel_reason,
                # Requests answering or replacing one another (a counter-offer, a revision).
                "counter_of": r.counter_of,
                "revision_of": r.revision_of,
                "replaced_by": r.replaced_by,
                "changes": [
                    {
                        "kind": c.kind.value,
                        "milestone_number": c.milestone_number,
                        "fields": dict(c.fields),
                    }
                    for c in r.changes
                ],
            }
            for r in queries.requests_of(session, contract.id)
        ],
        "escrow": {
            "funded_minor": escrow.funded_minor,
            "released_minor": escrow.released_minor,
            "refunded_minor": escrow.refunded_minor,
            "balance_minor": escrow.balance_minor,
        },
        "ledger": [
            {
                "at": _instant(e.at),
                # A top-up after an accepted increase is exported as a `fund` entry.
                "kind": LedgerKind.FUND.value if e.kind == LedgerKind.TOP_UP else e.kind.value,
                "milestone_number": (
                    None if e.milestone_id is None else numbers.get(e.milestone_id)
                ),
                "amount_minor": e.amount_minor,
                "actor": e.actor,
                "top_up": e.kind == LedgerKind.TOP_UP,
            }
            for e in entries
        ],
        "events": _events(contract, queries.history(session, contract.id)),
    }


def _events(contract: Contract, events: list[Event]) -> list[dict[str, Any]]:
    """The contract's history in order; `milestone_title` is the title the milestone had
    at the time (domain.record), for events that name one."""
    titles = record.titles_then(contract, events)
    return [
        {
            "at": _instant(e.at),
            "kind": str(e.kind),
            "actor": e.actor,
            "data": _in_utc(e.data) if isinstance(e.data, dict) else {},
            "milestone_number": e.milestone_number,
            "request_number": e.request_number,
            "milestone_title": titles.get(e.id),
        }
        for e in events
    ]


def _in_utc(value: Any) -> Any:
    """Event data as exported: instants (stored as ISO text with an offset) in UTC
    ending in `Z`, like every other instant of the export; the rest as stored."""
    if isinstance(value, dict):
        return {key: _in_utc(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_in_utc(item) for item in value]
    if isinstance(value, str) and _ISO_INSTANT.fullmatch(value):
        return _instant(datetime.fromisoformat(value))
    return value


def _milestone(m: Milestone) -> dict[str, Any]:
    return {
        "number": m.number,
        "title": m.title,
        "description": m.description,
        "amount_minor": m.amount_minor,
        "due_date": m.due_date.isoformat(),
        "status": m.status.value,
        "submitted_at": _instant(m.submitted_at),
        "auto_release_at": _instant(m.auto_release_at),
        "released_at": _instant(m.released_at),
        "released_automatically": m.released_automatically,
        "funded_at": _instant(m.funded_at),
        "refunded_at": _instant(m.refunded_at),
        # Paid to the provider before approval (partial releases); the rest is held.
        "released_early_minor": m.released_early_minor or 0,
    }
