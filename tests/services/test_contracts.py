"""Creating a contract: parties, roles, currency and title."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from domain import services
from domain.errors import InvalidCurrency, InvalidInput, LimitExceeded, NotAllowed
from domain.model import Role
from domain.services import Agency
from tests.factories import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    MANAGER,
    MANAGER_2,
    MEMBER,
    NOW,
    OTHER_WORKSPACE_USER,
    OUTSIDER,
    TEAM,
    add,
    new_contract,
)
from tests.services.support import event_kinds, exported, load, milestone, refuse, snapshot


def create(session: Session, **overrides: Any) -> services.Outcome:
    arguments: dict[str, Any] = {
        "title": "Website redesign",
        "team_id": TEAM,
        "channel_id": CHANNEL,
        "creator_id": CLIENT,
        "client_id": CLIENT,
        "freelancer_id": FREELANCER,
        "now": NOW,
    }
    arguments.update(overrides)
    return services.create_contract(session, **arguments)


def test_client_creates_an_individual_contract_in_negotiation(session: Session) -> None:
    outcome = create(session)

    contract = exported(session, outcome.contract_id)
    assert contract["status"] == "negotiating"
    assert contract["title"] == "Website redesign"
    assert contract["team_id"] == TEAM
    assert contract["channel_id"] == CHANNEL
    assert contract["currency"] == "USD"
    assert contract["client_id"] == CLIENT
    assert contract["freelancer_id"] == FREELANCER
    assert contract["agency"] is None
    assert contract["milestones"] == []
    assert contract["change_requests"] == []
    assert contract["ledger"] == []
    assert event_kinds(session, outcome.contract_id) == ["contract_created"]
    assert not outcome.already_done


def test_agency_contract_has_managers_and_members(session: Session) -> None:
    contract_id = new_contract(session, agency=True)

    contract = exported(session, contract_id)
    assert contract["freelancer_id"] is None
    assert contract["agency"] == {
        "name": "Pixel & Co",
        "manager_ids": [MANAGER, MANAGER_2],
        "member_ids": [MEMBER],
    }
    loaded = load(session, contract_id)
    assert loaded.role_of(MANAGER) == Role.MANAGER
    assert loaded.role_of(MEMBER) == Role.MEMBER
    assert loaded.role_of(OUTSIDER) is None


@pytest.mark.parametrize(
    ("creator", "agency"),
    [(CLIENT, False), (FREELANCER, False), (CLIENT, True), (MANAGER, True), (MEMBER, True)],
)
def test_any_party_can_create_the_contract(session: Session, creator: str, agency: bool) -> None:
    contract_id = new_contract(session, agency=agency, creator=creator)

    assert load(session, contract_id).created_by == creator


@pytest.mark.parametrize("agency", [False, True])
def test_creator_who_is_not_a_party_is_refused(session: Session, agency: bool) -> None:
    message = refuse(
        session,
        NotAllowed,
        services.create_contract,
        title="Website redesign",
        team_id=TEAM,
        channel_id=CHANNEL,
        creator_id=OUTSIDER,
        client_id=CLIENT,
        freelancer_id=None if agency else FREELANCER,
        agency=Agency("Pixel & Co", [MANAGER]) if agency else None,
        now=NOW,
    )
    assert "only create a contract you are a party to" in message
    assert snapshot(session).export == {"contracts": []}


def test_contract_with_both_freelancer_and_agency_is_refused(session: Session) -> None:
    message = refuse(
        session,
        InvalidInput,
        create,
        agency=Agency("Pixel & Co", [MANAGER]),
    )
    assert "either a freelancer or an agency" in message


def test_contract_with_neither_freelancer_nor_agency_is_refused(session: Session) -> None:
    message = refuse(session, InvalidInput, create, freelancer_id=None)
    assert "either a freelancer or an agency" in message


def test_agency_without_a_manager_is_refused(session: Session) -> None:
    message = refuse(
        session, InvalidInput, create, freelancer_id=None, agency=Agency("Pixel & Co", [], [MEMBER])
    )
    assert message == "An agency needs at least one manager."


@pytest.mark.parametrize(
    ("freelancer", "agency", "expected"),
    [
        (CLIENT, None, f"@{CLIENT} can't be both client and freelancer."),
        (None, Agency("Pixel", [CLIENT]), f"@{CLIENT} can't be both client and manager."),
        (
            None,
            Agency("Pixel", [MANAGER], [CLIENT]),
            f"@{CLIENT} can't be both client and member.",
        ),
        (
            None,
            Agency("Pixel", [MANAGER], [MANAGER]),
            f"@{MANAGER} can't be both manager and member.",
        ),
        (
            None,
            Agency("Pixel", [MANAGER, MANAGER]),
            f"@{MANAGER} can't be both manager and manager.",
        ),
    ],
)
def test_same_person_in_two_roles_is_refused(
    session: Session, freelancer: str | None, agency: Agency | None, expected: str
) -> None:
    message = refuse(session, InvalidInput, create, freelancer_id=freelancer, agency=agency)
    assert message == expected


@pytest.mark.parametrize(
    ("typed", "stored", "amount", "minor"),
    [
        ("usd", "USD", "1,500.50", 150050),
        (" eur ", "EUR", "12.5", 1250),
        ("JPY", "JPY", "1500", 1500),
        ("kwd", "KWD", "1.5", 1500),
        ("KWD", "KWD", "2.125", 2125),
    ],
)
def test_currency_is_normalised_and_amounts_use_its_iso_digits(
    session: Session, typed: str, stored: str, amount: str, minor: int
) -> None:
    contract_id = new_contract(session, currency=typed)
    add(session, contract_id, amount=amount)

    assert exported(session, contract_id)["currency"] == stored
    assert milestone(session, contract_id, 1)["amount_minor"] == minor


@pytest.mark.parametrize("code", ["ABC", "US", "dollars", "XAU", "XXX", ""])
def test_unusable_currency_is_refused(session: Session, code: str) -> None:
    refuse(session, InvalidCurrency, create, currency=code)


def test_title_is_trimmed(session: Session) -> None:
    outcome = create(session, title="  Logo  ")

    assert exported(session, outcome.contract_id)["title"] == "Logo"


def test_title_of_200_characters_is_accepted(session: Session) -> None:
    outcome = create(session, title="t" * 200)

    assert exported(session, outcome.contract_id)["title"] == "t" * 200


def test_title_of_201_characters_is_refused(session: Session) -> None:
    message = refuse(session, LimitExceeded, create, title="t" * 201)
    assert message == "The title is 201 characters long; the limit is 200."


@pytest.mark.parametrize("title", ["", "   "])
def test_empty_title_is_refused(session: Session, title: str) -> None:
    message = refuse(session, InvalidInput, create, title=title)
    assert message == "The title can't be empty."


def test_agency_name_over_200_characters_is_refused(session: Session) -> None:
    refuse(
        session,
        LimitExceeded,
        create,
        freelancer_id=None,
        agency=Agency("a" * 201, [MANAGER]),
    )


def test_party_from_another_workspace_is_one_identity_with_its_team_recorded(
    session: Session,
) -> None:
    outcome = create(
        session,
        freelancer_id=OTHER_WORKSPACE_USER,
        team_ids={OTHER_WORKSPACE_USER: "T0THER"},
    )

    contract = load(session, outcome.contract_id)
    assert contract.freelancer_id == OTHER_WORKSPACE_USER
    teams = {p.user_id: p.team_id for p in contract.parties}
    assert teams == {CLIENT: TEAM, OTHER_WORKSPACE_USER: "T0THER"}


def test_record_team_fills_in_an_unknown_workspace_once(session: Session) -> None:
    contract_id = new_contract(session)

    services.record_team(session, contract_id=contract_id, user_id=FREELANCER, team_id="T2")
    services.record_team(session, contract_id=contract_id, user_id=FREELANCER, team_id="T3")

    teams = {p.user_id: p.team_id for p in load(session, contract_id).parties}
    assert teams[FREELANCER] == "T2"
    assert teams[CLIENT] == TEAM


def test_several_contracts_can_share_a_channel(session: Session) -> None:
    first = new_contract(session, title="One")
    second = new_contract(session, title="Two")

    assert first != second
    assert [c["title"] for c in snapshot(session).export["contracts"]] == ["One", "Two"]
