"""`milestone-bot export`: the JSON of interface.md, field names fixed."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from domain import services
from domain.db import read_transaction
from domain.errors import NotFound
from domain.export import export_contracts
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone
from tests.factories import (
    CLIENT,
    DUE,
    FREELANCER,
    MANAGER,
    MANAGER_2,
    MEMBER,
    NOW,
    active_contract,
    funded_contract,
    later,
    new_contract,
    submitted_contract,
)
from tests.services.support import exported, load, request

# The field names of interface.md, level by level. Extra fields are welcome.
TOP = {"contracts"}
CONTRACT = {
    "id",
    "title",
    "team_id",
    "channel_id",
    "currency",
    "status",
    "client_id",
    "freelancer_id",
    "agency",
    "milestones",
    "change_requests",
    "escrow",
    "ledger",
    "events",
}
AGENCY = {"name", "manager_ids", "member_ids"}
MILESTONE = {
    "number",
    "title",
    "description",
    "amount_minor",
    "due_date",
    "status",
    "submitted_at",
    "auto_release_at",
    "released_at",
    "released_automatically",
}
REQUEST = {
    "number",
    "status",
    "proposed_by",
    "proposed_at",
    "decided_by",
    "decided_at",
    "message",
    "changes",
}
CHANGE = {"kind", "milestone_number", "fields"}
FIELDS = {"title", "description", "amount_minor", "due_date"}
ESCROW = {"funded_minor", "released_minor", "refunded_minor", "balance_minor"}
LEDGER = {"at", "kind", "milestone_number", "amount_minor", "actor"}
EVENT = {"at", "kind", "actor", "data"}

INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
INSTANT_KEYS = {
    "submitted_at",
    "auto_release_at",
    "released_at",
    "at",
    "created_at",
    "proposed_at",
    "decided_at",
}


def busy_contracts(session: Session) -> None:
    """Contracts with something in every part of the export."""
    agency_id = active_contract(session, agency=True)
    services.fund_milestone(session, contract_id=agency_id, actor_id=CLIENT, now=NOW)
    services.submit_work(session, contract_id=agency_id, actor_id=MEMBER, now=NOW)
    services.auto_release(
        session, milestone_id=load(session, agency_id).milestones[0].id, now=later(days=14)
    )
    proposal = services.propose_changes(
        session,
        contract_id=agency_id,
        actor_id=MANAGER,
        changes=[
            NewMilestone("Extra", "10", DUE, "More"),
            MilestoneEdit(2, amount="3000", due_date=DUE.replace(day=20)),
        ],
        message="More scope",
        now=later(days=14),
    )
    services.accept_request(
        session, actor_id=CLIENT, now=later(days=14), request_id=proposal.request_id
    )
    services.propose_changes(
        session,
        contract_id=agency_id,
        actor_id=MANAGER_2,
        changes=[MilestoneDeletion(3)],
        now=later(days=15),
    )
    individual_id = submitted_contract(session)
    services.approve_work(session, contract_id=individual_id, actor_id=CLIENT, now=later(1))
    services.fund_milestone(session, contract_id=individual_id, actor_id=CLIENT, now=later(2))
    services.end_contract(session, contract_id=individual_id, actor_id=CLIENT, now=later(3))
    new_contract(session, currency="jpy", title="Still talking")


def walk_instants(value: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in walk_instants(v, k)]
    if isinstance(value, list):
        return [pair for item in value for pair in walk_instants(item, key)]
    return [(key, value)] if key in INSTANT_KEYS else []


def test_export_has_every_field_name_of_the_interface_at_every_level(session: Session) -> None:
    busy_contracts(session)

    with read_transaction(session):
        data = export_contracts(session)

    assert set(data) >= TOP
    assert len(data["contracts"]) == 3
    for contract in data["contracts"]:
        assert set(contract) >= CONTRACT
        assert set(contract["escrow"]) >= ESCROW
        if contract["agency"] is not None:
            assert set(contract["agency"]) >= AGENCY
        for milestone in contract["milestones"]:
            assert set(milestone) >= MILESTONE
        for change_request in contract["change_requests"]:
            assert set(change_request) >= REQUEST
            for change in change_request["changes"]:
                assert set(change) >= CHANGE
                assert set(change["fields"]) <= FIELDS
        for entry in contract["ledger"]:
            assert set(entry) >= LEDGER
        assert contract["events"], "every contract has at least its creation"
        for event in contract["events"]:
            assert set(event) >= EVENT
    assert [c["change_requests"] != [] for c in data["contracts"]] == [True, False, False]
    assert [c["ledger"] != [] for c in data["contracts"]] == [True, True, False]


def test_export_values_have_the_interface_types_and_vocabularies(session: Session) -> None:
    busy_contracts(session)

    with read_transaction(session):
        data = json.loads(json.dumps(export_contracts(session)))

    for contract in data["contracts"]:
        assert isinstance(contract["id"], int)
        assert contract["status"] in {"negotiating", "active", "ending", "closed"}
        assert (contract["freelancer_id"] is None) != (contract["agency"] is None)
        for milestone in contract["milestones"]:
            assert isinstance(milestone["number"], int)
            assert isinstance(milestone["amount_minor"], int)
            assert isinstance(milestone["released_automatically"], bool)
            assert DATE.fullmatch(milestone["due_date"])
            assert milestone["status"] in {
                "pending",
                "funded",
                "submitted",
                "released",
                "deleted",
                "disputed",
            }
        for change_request in contract["change_requests"]:
            assert change_request["status"] in {
                "pending",
                "accepted",
                "declined",
                "withdrawn",
                "cancelled",
                "countered",
            }
            for change in change_request["changes"]:
                assert change["kind"] in {"add", "edit", "delete"}
        for entry in contract["ledger"]:
            assert entry["kind"] in {"fund", "release", "refund", "bonus"}
            assert isinstance(entry["amount_minor"], int)
            assert entry["actor"] == "system" or entry["actor"].startswith("U")
        assert all(isinstance(v, int) for v in contract["escrow"].values())


def test_instants_are_iso_8601_utc_ending_in_z(session: Session) -> None:
    busy_contracts(session)

    with read_transaction(session):
        instants = walk_instants(export_contracts(session))

    assert {key for key, _ in instants} >= {
        "submitted_at",
        "auto_release_at",
        "released_at",
        "at",
    }
    for key, value in instants:
        assert value is None or INSTANT.fullmatch(value), (key, value)


def test_instants_given_in_another_time_zone_are_exported_in_utc(session: Session) -> None:
    contract_id = funded_contract(session)
    berlin = datetime(2026, 11, 3, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))

    services.submit_work(session, contract_id=contract_id, actor_id=FREELANCER, now=berlin)

    milestone = exported(session, contract_id)["milestones"][0]
    assert milestone["submitted_at"] == "2026-11-03T11:00:00Z"
    assert milestone["auto_release_at"] == "2026-11-17T11:00:00Z"


def test_due_date_is_a_calendar_date(session: Session) -> None:
    contract_id = active_contract(session)

    assert [m["due_date"] for m in exported(session, contract_id)["milestones"]] == [
        "2026-12-01",
        "2026-12-01",
    ]


def test_contract_fields(session: Session) -> None:
    contract_id = active_contract(session, agency=True)

    contract = exported(session, contract_id)

    omitted = {"milestones", "change_requests", "ledger", "events"}
    assert {k: contract[k] for k in CONTRACT - omitted} == {
        "id": contract_id,
        "title": "Website redesign",
        "team_id": "T0001",
        "channel_id": "C0001",
        "currency": "USD",
        "status": "active",
        "client_id": CLIENT,
        "freelancer_id": None,
        "agency": {
            "name": "Pixel & Co",
            "manager_ids": [MANAGER, MANAGER_2],
            "member_ids": [MEMBER],
        },
        "escrow": {"funded_minor": 0, "released_minor": 0, "refunded_minor": 0, "balance_minor": 0},
    }


def test_milestone_number_of_an_add_is_null_until_accepted_then_its_number(
    session: Session,
) -> None:
    contract_id = active_contract(session)
    proposal = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[NewMilestone("Extra", "12.34", DUE, "Polish"), MilestoneEdit(1, title="One")],
        message="Two things",
        now=NOW,
    )
    pending = request(session, contract_id, 1)
    assert {key: pending[key] for key in REQUEST} == {
        "number": 1,
        "status": "pending",
        "proposed_by": FREELANCER,
        "proposed_at": "2026-11-02T10:00:00Z",
        "decided_by": None,
        "decided_at": None,
        "message": "Two things",
        "changes": [
            {
                "kind": "add",
                "milestone_number": None,
                "fields": {
                    "title": "Extra",
                    "description": "Polish",
                    "amount_minor": 1234,
                    "due_date": "2026-12-01",
                },
            },
            {"kind": "edit", "milestone_number": 1, "fields": {"title": "One"}},
        ],
    }

    services.accept_request(session, actor_id=CLIENT, now=NOW, request_id=proposal.request_id)

    accepted = request(session, contract_id, 1)
    assert [c["milestone_number"] for c in accepted["changes"]] == [3, 1]
    assert (accepted["status"], accepted["decided_by"]) == ("accepted", CLIENT)


def test_a_delete_change_has_its_milestone_number_and_no_fields(session: Session) -> None:
    contract_id = active_contract(session)
    services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneDeletion(2)],
        now=NOW,
    )

    assert request(session, contract_id, 1)["changes"] == [
        {"kind": "delete", "milestone_number": 2, "fields": {}}
    ]


def test_export_of_one_contract_and_of_a_missing_one(session: Session) -> None:
    first = new_contract(session, title="One")
    second = new_contract(session, title="Two")

    with read_transaction(session):
        everything = export_contracts(session)
        only_second = export_contracts(session, second)

    assert [c["id"] for c in everything["contracts"]] == [first, second]
    assert only_second == {"contracts": [everything["contracts"][1]]}
    with pytest.raises(NotFound), read_transaction(session):
        export_contracts(session, 999)


def test_export_of_an_empty_database(session: Session) -> None:
    with read_transaction(session):
        assert export_contracts(session) == {"contracts": []}


# --- second wave: the record --------------------------------------------------------


def test_each_contract_carries_its_events_in_order_with_who_and_when(session: Session) -> None:
    contract_id = submitted_contract(session)
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(2))

    exported_events = exported(session, contract_id)["events"]

    assert [(e["kind"], e["actor"], e["at"]) for e in exported_events] == [
        ("contract_created", CLIENT, "2026-11-02T10:00:00Z"),
        ("milestone_added", CLIENT, "2026-11-02T10:00:00Z"),
        ("milestone_added", CLIENT, "2026-11-02T10:00:00Z"),
        ("terms_agreed", CLIENT, "2026-11-02T10:00:00Z"),
        ("terms_agreed", FREELANCER, "2026-11-02T10:00:00Z"),
        ("contract_activated", "system", "2026-11-02T10:00:00Z"),
        ("milestone_funded", CLIENT, "2026-11-02T10:00:00Z"),
        ("work_submitted", FREELANCER, "2026-11-02T10:00:00Z"),
        ("milestone_released", CLIENT, "2026-11-02T12:00:00Z"),
    ]
    released = exported_events[-1]
    assert released["data"] == {
        "amount_minor": 150000,
        "automatic": False,
        "title": "Milestone 1",
    }
    assert (released["milestone_number"], released["milestone_title"]) == (1, "Milestone 1")
    assert json.loads(json.dumps(exported_events)) == exported_events


def test_an_automatic_release_is_an_event_by_the_system(session: Session) -> None:
    contract_id = submitted_contract(session)
    services.auto_release(
        session, milestone_id=load(session, contract_id).milestones[0].id, now=later(days=14)
    )

    last = exported(session, contract_id)["events"][-1]

    assert (last["kind"], last["actor"], last["data"]["automatic"]) == (
        "milestone_released",
        "system",
        True,
    )


def test_requests_carry_when_they_were_proposed_and_decided(session: Session) -> None:
    contract_id = active_contract(session)
    accepted = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(1, title="One")],
        now=later(1),
    )
    services.accept_request(session, actor_id=CLIENT, now=later(3), request_id=accepted.request_id)
    services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, title="Two")],
        now=later(4),
    )

    first, second = (request(session, contract_id, n) for n in (1, 2))

    assert (first["proposed_at"], first["decided_at"]) == (
        "2026-11-02T11:00:00Z",
        "2026-11-02T13:00:00Z",
    )
    assert (second["proposed_at"], second["decided_at"]) == ("2026-11-02T14:00:00Z", None)


def test_exported_events_name_each_milestone_as_it_was_then(session: Session) -> None:
    contract_id = funded_contract(session)
    rename = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(1, title="Design v2")],
        now=later(1),
    )
    services.accept_request(session, actor_id=CLIENT, now=later(2), request_id=rename.request_id)
    services.submit_work(session, contract_id=contract_id, actor_id=FREELANCER, now=later(3))

    titles = [
        (e["kind"], e["milestone_title"])
        for e in exported(session, contract_id)["events"]
        if e["milestone_number"] == 1
    ]

    assert titles == [
        ("milestone_added", "Milestone 1"),
        ("milestone_funded", "Milestone 1"),
        ("milestone_edited", "Design v2"),
        ("work_submitted", "Design v2"),
    ]
