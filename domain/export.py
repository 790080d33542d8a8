"""`milestone-bot export`: contracts as the JSON of interface.md (field names fixed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import ledger, queries
from domain.model import Contract, LedgerKind, Milestone, Role


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
                "decided_by": r.decided_by,
                "message": r.message,
                "decline_reason": r.decline_reason,
                "cancel_reason": r.cancel_reason,
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
                "milestone_number": numbers.get(e.milestone_id),
                "amount_minor": e.amount_minor,
                "actor": e.actor,
                "top_up": e.kind == LedgerKind.TOP_UP,
            }
            for e in entries
        ],
    }


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
    }
