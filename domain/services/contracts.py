"""Contracts: creating one, agreeing to its terms (ending one: domain/services/endings.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import reminders
from domain.db import write_transaction
from domain.errors import InvalidCurrency, InvalidInput, NotAllowed
from domain.model import (
    SYSTEM_ACTOR,
    Contract,
    ContractStatus,
    EventKind,
    Party,
    Role,
)
from domain.money import normalize_currency
from domain.policy import MAX_TITLE
from domain.rules import Act, mid_sentence, require, who_can
from domain.services._locking import lock_contract, require_open
from domain.services._validation import clean_text
from domain.services._writes import Tx
from domain.services.inputs import Agency, Outcome
from domain.text import Command, Person, said

# The input of the form that names a party of each role.
_ROLE_INPUT = {
    Role.CLIENT: "client",
    Role.FREELANCER: "freelancer",
    Role.MANAGER: "managers",
    Role.MEMBER: "members",
}


def create_contract(
    session: Session,
    *,
    title: str,
    team_id: str,
    channel_id: str,
    creator_id: str,
    client_id: str,
    freelancer_id: str | None = None,
    agency: Agency | None = None,
    currency: str = "USD",
    now: datetime,
    team_ids: Mapping[str, str] | None = None,
) -> Outcome:
    """A new contract in `channel_id`; the creator must be one of its parties."""
    clean_title = clean_text(title, what="title", limit=MAX_TITLE, required=True)
    try:
        code = normalize_currency(currency)
    except InvalidCurrency as refusal:
        raise InvalidCurrency(refusal.said, field="currency") from None
    if (freelancer_id is None) == (agency is None):
        raise InvalidInput(
            "A contract has either a freelancer or an agency (not both).", field="freelancer"
        )
    parties: list[tuple[str, Role]] = [(client_id, Role.CLIENT)]
    agency_name: str | None = None
    if freelancer_id is not None:
        parties.append((freelancer_id, Role.FREELANCER))
    elif agency is not None:
        agency_name = clean_text(agency.name, what="agency name", limit=MAX_TITLE, required=True)
        if not agency.manager_ids:
            raise InvalidInput("An agency needs at least one manager.", field="managers")
        parties += [(u, Role.MANAGER) for u in agency.manager_ids]
        parties += [(u, Role.MEMBER) for u in agency.member_ids]
    seen: dict[str, Role] = {}
    for user_id, role in parties:
        if user_id in seen:
            raise InvalidInput(
                said(Person(user_id), f" can't be both {seen[user_id].value} and {role.value}."),
                field=_ROLE_INPUT[role],
            )
        seen[user_id] = role
    if creator_id not in seen:
        raise NotAllowed(
            "You can only create a contract you are a party to: name yourself as the client, "
            "the freelancer or an agency manager or member.",
            field="client",
        )
    known_teams = {creator_id: team_id, **(team_ids or {})}
    with write_transaction(session):
        contract = Contract(
            title=clean_title,
            team_id=team_id,
            channel_id=channel_id,
            currency=code,
            status=ContractStatus.NEGOTIATING,
            agency_name=agency_name,
            created_by=creator_id,
            created_at=now,
            next_milestone_number=1,
            next_request_number=1,
            version=1,
            parties=[
                Party(user_id=user_id, role=role, team_id=known_teams.get(user_id))
                for user_id, role in parties
            ],
            milestones=[],
        )
        session.add(contract)
        session.flush()
        tx = Tx(session, contract, now)
        tx.event(
            EventKind.CONTRACT_CREATED,
            creator_id,
            title=clean_title,
            currency=code,
            parties={user_id: role.value for user_id, role in parties},
        )
        tx.changed()
        return tx.outcome(
            said(
                f"Contract {contract.id} ({clean_title}) created in {code}. "
                "Add milestones, then both sides type ",
                Command("start"),
                " to agree.",
            )
        )


def record_team(session: Session, *, contract_id: int, user_id: str, team_id: str) -> None:
    """Record the workspace a party acts from (Slack Connect), if not yet known."""
    with write_transaction(session):
        party = session.scalar(
            select(Party).where(Party.contract_id == contract_id, Party.user_id == user_id)
        )
        if party is not None and party.team_id is None:
            party.team_id = team_id


def agree_to_terms(session: Session, *, contract_id: int, actor_id: str, now: datetime) -> Outcome:
    """`start`: one side agrees to the terms as they stand; both → active."""
    with write_transaction(session):
        contract = lock_contract(session, contract_id)
        tx = Tx(session, contract, now)
        role = require(contract, actor_id, Act.AGREE)
        if contract.status == ContractStatus.ACTIVE:
            return tx.outcome(f"Contract {contract.id} is already active.", already_done=True)
        require_open(contract)
        if not contract.live_milestones:
            raise InvalidInput("Add at least one milestone before agreeing to the terms.")
        if not contract.agree(role=role, by=actor_id, at=now):
            waiting = (
                who_can(contract, Act.PROPOSE)
                if role == Role.CLIENT
                else said("the client, ", Person(contract.client_id))
            )
            return tx.outcome(
                said("Your side has already agreed; waiting for ", waiting, "."),
                already_done=True,
            )
        tx.event(
            EventKind.TERMS_AGREED,
            actor_id,
            side="client" if role == Role.CLIENT else "provider",
            total_minor=contract.total_minor,
        )
        activated = contract.both_agreed
        if activated:
            contract.activate(at=now)
            reminders.on_contract_activated(tx.reminders, contract)
            tx.event(EventKind.CONTRACT_ACTIVATED, SYSTEM_ACTOR, total_minor=contract.total_minor)
            summary = said(
                f"Contract {contract.id} is active. Next: the client funds milestone "
                f"{contract.next_to_fund.number if contract.next_to_fund else 1}."
            )
        else:
            other = (
                who_can(contract, Act.PROPOSE)
                if role == Role.CLIENT
                else said("the client, ", Person(contract.client_id))
            )
            summary = said(
                "You agreed to the terms. Waiting for ", mid_sentence(other), " to agree."
            )
        tx.changed()
        return tx.outcome(summary, contract_activated=activated)
