"""One request taking the place of another in one step: a revision by the side that
proposed it (the old one becomes `withdrawn`), or a counter-offer from the side that
answers it (the old one becomes `countered`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from domain import queries
from domain.errors import InvalidInput, NotFound
from domain.model import ChangeRequest, Contract
from domain.rules import Act, RequestAction, answering_ids, request_next, request_roles, require
from domain.text import Person, Said, joined, said

_ACT = {RequestAction.WITHDRAW: Act.WITHDRAW, RequestAction.COUNTER: Act.COUNTER}
_DOING = {RequestAction.WITHDRAW: "revise", RequestAction.COUNTER: "suggest changes to"}


@dataclass(frozen=True)
class Replacing:
    """The pending request the new one replaces, and how (WITHDRAW: revised; COUNTER:
    countered). `done`: the person replaced it already (a repeat changes nothing)."""

    old: ChangeRequest
    action: RequestAction
    done: bool = False

    @property
    def note(self) -> str:
        """What the new request is, after "Sent change request #N to … for a decision."."""
        if self.action == RequestAction.COUNTER:
            return f" It is a counter-offer to change request #{self.old.number}."
        return f" It replaces change request #{self.old.number}."

    def already_said(self) -> Said:
        how = "countered" if self.action == RequestAction.COUNTER else "revised"
        return said(
            f"Change request #{self.old.number} is already {how} as change request "
            f"#{self.old.replaced_by}."
        )


def replacing(
    session: Session,
    contract: Contract,
    pending: Sequence[ChangeRequest],
    actor_id: str,
    *,
    revises: int | None,
    counters: int | None,
) -> Replacing | None:
    """The request a new one replaces (`revises` or `counters`: its id), checked under
    the contract's lock: part of this contract, the actor on the side that may replace
    it that way, and still pending (or replaced already by the same person)."""
    if revises is None and counters is None:
        return None
    if revises is not None and counters is not None:
        raise InvalidInput("A change request can revise one request or counter one, not both.")
    action = RequestAction.WITHDRAW if revises is not None else RequestAction.COUNTER
    request_id = revises if revises is not None else counters
    old = next((r for r in pending if r.id == request_id), None)
    if old is None:
        assert request_id is not None
        old = queries.load_request(session, request_id)
        if old.contract_id != contract.id:
            raise NotFound("That request is not part of this contract.")
    act = _ACT[action]
    require(
        contract,
        actor_id,
        act,
        f"{_DOING[action]} change request #{old.number}",
        roles=request_roles(contract, act, old.proposed_by),
    )
    if old.replaced_by is not None and old.decided_as(action, actor_id):
        return Replacing(old, action, done=True)
    request_next(old.status, action, old.number)  # still pending?
    return Replacing(old, action)


def answerers(contract: Contract, proposed_by: str) -> Said:
    """Who answers a request `proposed_by` made: "@client", "@freelancer", "@m1 or @m2"."""
    return joined([Person(u) for u in answering_ids(contract, proposed_by)], " or ", " or ")
