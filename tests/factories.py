"""Test data in one place: parties, contracts in each phase, clocks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from domain import services
from domain.services import Agency, NewMilestone

CLIENT = "UCLIENT01"
FREELANCER = "UFREELA01"
MANAGER = "UMANAGE01"
MANAGER_2 = "UMANAGE02"
MEMBER = "UMEMBER01"
OUTSIDER = "UOUTSID01"
OTHER_WORKSPACE_USER = "WOTHERWS1"  # a user from another organisation (Slack Connect)
TEAM = "T0001"
CHANNEL = "C0001"

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
DUE = date(2026, 12, 1)


def later(hours: float = 0, days: float = 0) -> datetime:
    return NOW + timedelta(hours=hours, days=days)


def new_contract(
    session: Session,
    *,
    agency: bool = False,
    currency: str = "USD",
    creator: str = CLIENT,
    channel: str = CHANNEL,
    title: str = "Website redesign",
) -> int:
    outcome = services.create_contract(
        session,
        title=title,
        team_id=TEAM,
        channel_id=channel,
        creator_id=creator,
        client_id=CLIENT,
        freelancer_id=None if agency else FREELANCER,
        agency=Agency("Pixel & Co", [MANAGER, MANAGER_2], [MEMBER]) if agency else None,
        currency=currency,
        now=NOW,
    )
    return outcome.contract_id


def add(
    session: Session,
    contract_id: int,
    title: str = "Design",
    amount: str = "1500",
    *,
    actor: str = CLIENT,
    due: date = DUE,
    description: str = "",
) -> services.Outcome:
    return services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=actor,
        changes=[NewMilestone(title, amount, due, description)],
        now=NOW,
    )


def provider_of(agency: bool) -> str:
    return MANAGER if agency else FREELANCER


def active_contract(
    session: Session, *, agency: bool = False, amounts: tuple[str, ...] = ("1500", "2500")
) -> int:
    """An active contract with milestones 1..n, none funded."""
    contract_id = new_contract(session, agency=agency)
    for i, amount in enumerate(amounts, start=1):
        add(session, contract_id, f"Milestone {i}", amount)
    services.agree_to_terms(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    services.agree_to_terms(session, contract_id=contract_id, actor_id=provider_of(agency), now=NOW)
    return contract_id


def funded_contract(session: Session, *, agency: bool = False) -> int:
    contract_id = active_contract(session, agency=agency)
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)
    return contract_id


def submitted_contract(session: Session, *, agency: bool = False) -> int:
    contract_id = funded_contract(session, agency=agency)
    services.submit_work(
        session, contract_id=contract_id, actor_id=provider_of(agency), note="done", now=NOW
    )
    return contract_id
