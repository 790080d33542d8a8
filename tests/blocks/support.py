"""Helpers for block tests: validation against slack_sdk plus the limits it doesn't check,
and in-memory domain objects (no database) for small, exact fixtures."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from domain.ledger import Escrow
from domain.model import (
    Change,
    ChangeKind,
    ChangeRequest,
    Contract,
    ContractStatus,
    Event,
    Milestone,
    MilestoneStatus,
    Party,
    RequestStatus,
    Role,
)
from domain.snapshot import ContractSnapshot, next_action
from handlers.blocks import Message
from handlers.ids import View as ViewId
from handlers.payloads import ModalContext

CLIENT = "UCLIENT01"
FREELANCER = "UFREELA01"
MANAGER = "UMANAGE01"
MANAGER_2 = "UMANAGE02"
MEMBER = "UMEMBER01"
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
DUE = date(2026, 12, 1)
CHANNEL = "C0001"

JsonDict = dict[str, Any]


# --------------------------------------------------------------------------------------
# Validation


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _check_common(blocks: Sequence[Mapping[str, Any]]) -> None:
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), f"duplicate block ids: {block_ids}"
    for block in blocks:
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= 3000
            for item in block.get("fields", []):
                assert 0 < len(item["text"]) <= 2000, "section field over 2000 chars"
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
        if block["type"] == "actions":
            ids = [e["action_id"] for e in block["elements"]]
            assert len(ids) == len(set(ids)), "action ids repeat inside one block"
            for element in block["elements"]:
                assert element.get("action_id"), "button without action_id"
    for node in _walk(list(blocks)):
        if node.get("type") in ("mrkdwn", "plain_text"):
            assert isinstance(node.get("text"), str) and node["text"].strip(), f"empty: {node}"
        if node.get("type") == "plain_text_input" and "max_length" in node:
            assert 1 <= node["max_length"] <= 3000
        if node.get("type") in ("checkboxes", "radio_buttons"):
            assert len(node["options"]) <= 10


def check_message(message: Message) -> list[JsonDict]:
    """Validate like Slack would; return the blocks as dicts."""
    assert message.text.strip(), "a message needs fallback text"
    kwargs = message.as_kwargs()
    blocks: list[JsonDict] = kwargs["blocks"]
    assert 1 <= len(blocks) <= 50, f"{len(blocks)} blocks"
    for raw in blocks:
        parsed = Block.parse(raw)
        assert parsed is not None, f"unknown block {raw}"
        assert parsed.to_dict() == raw
    _check_common(blocks)
    return blocks


def check_view(view: View) -> JsonDict:
    raw = view.to_dict()
    again = View(**raw).to_dict()
    assert again == raw
    assert 1 <= len(raw["blocks"]) <= 100
    if raw["type"] == "modal":
        assert len(raw["title"]["text"]) <= 24
        assert raw["callback_id"] in {v.value for v in ViewId}
        ModalContext.load(raw["private_metadata"])
    for block in raw["blocks"]:
        assert Block.parse(block) is not None
    _check_common(raw["blocks"])
    return raw


def buttons(blocks: Sequence[Mapping[str, Any]]) -> list[JsonDict]:
    out: list[JsonDict] = []
    for block in blocks:
        if block["type"] == "actions":
            out += [e for e in block["elements"] if e["type"] == "button"]
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping) and accessory.get("type") == "button":
            out.append(dict(accessory))
    return out


def labels(blocks: Sequence[Mapping[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in buttons(blocks)]


def all_text(blocks: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(
        str(node["text"]) for node in _walk(list(blocks)) if isinstance(node.get("text"), str)
    )


# --------------------------------------------------------------------------------------
# In-memory objects


def milestone(
    number: int,
    *,
    status: MilestoneStatus = MilestoneStatus.PENDING,
    title: str | None = None,
    amount_minor: int = 150_000,
    due_date: date = DUE,
    description: str = "",
    **extra: Any,
) -> Milestone:
    values: dict[str, Any] = {
        "id": 100 + number,
        "contract_id": 7,
        "number": number,
        "title": title if title is not None else f"Milestone {number}",
        "description": description,
        "amount_minor": amount_minor,
        "due_date": due_date,
        "status": status,
        "created_at": NOW,
        "submission_count": 0,
        "released_automatically": False,
    }
    values.update(extra)
    return Milestone(**values)


def contract(
    *,
    status: ContractStatus = ContractStatus.NEGOTIATING,
    milestones: list[Milestone] | None = None,
    agency: bool = False,
    title: str = "Website redesign",
    currency: str = "USD",
    **extra: Any,
) -> Contract:
    parties = [Party(id=1, user_id=CLIENT, role=Role.CLIENT)]
    if agency:
        parties += [
            Party(id=2, user_id=MANAGER, role=Role.MANAGER),
            Party(id=3, user_id=MANAGER_2, role=Role.MANAGER),
            Party(id=4, user_id=MEMBER, role=Role.MEMBER),
        ]
    else:
        parties.append(Party(id=2, user_id=FREELANCER, role=Role.FREELANCER))
    values: dict[str, Any] = {
        "id": 7,
        "title": title,
        "team_id": "T0001",
        "channel_id": CHANNEL,
        "currency": currency,
        "status": status,
        "agency_name": "Pixel & Co" if agency else None,
        "created_by": CLIENT,
        "created_at": NOW,
        "next_milestone_number": len(milestones or []) + 1,
        "next_request_number": 1,
        "version": 1,
        "parties": parties,
        "milestones": milestones if milestones is not None else [],
    }
    values.update(extra)
    return Contract(**values)


def snap(
    c: Contract,
    *,
    pending: list[ChangeRequest] | None = None,
    escrow: Escrow | None = None,
) -> ContractSnapshot:
    requests = pending or []
    return ContractSnapshot(
        contract=c,
        pending_requests=requests,
        escrow=escrow or Escrow(),
        next_action=next_action(c, requests),
    )


def request(
    number: int = 1,
    *,
    changes: list[Change],
    status: RequestStatus = RequestStatus.PENDING,
    proposed_by: str = FREELANCER,
    message: str = "",
    **extra: Any,
) -> ChangeRequest:
    values: dict[str, Any] = {
        "id": 50 + number,
        "contract_id": 7,
        "number": number,
        "status": status,
        "proposed_by": proposed_by,
        "proposed_at": NOW,
        "message": message,
        "changes": changes,
    }
    values.update(extra)
    return ChangeRequest(**values)


def change(
    kind: ChangeKind,
    number: int | None,
    fields: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    position: int = 0,
) -> Change:
    return Change(
        position=position, kind=kind, milestone_number=number, fields=fields or {}, before=before
    )


def event(
    kind: str,
    *,
    actor: str = CLIENT,
    milestone_number: int | None = None,
    request_number: int | None = None,
    at: datetime = NOW,
    event_id: int = 1,
    **data: Any,
) -> Event:
    return Event(
        id=event_id,
        contract_id=7,
        at=at,
        actor=actor,
        kind=kind,
        milestone_number=milestone_number,
        request_number=request_number,
        data=data,
    )


def later(days: float = 0, hours: float = 0) -> datetime:
    return NOW + timedelta(days=days, hours=hours)
