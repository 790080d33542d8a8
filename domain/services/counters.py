"""Counter-offers: the side that answers a pending change request suggests changes
instead of accepting or declining it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from domain.policy import DEFAULT_POLICY, Policy
from domain.services.changes import propose_changes
from domain.services.inputs import ChangeInput, Outcome


def counter_request(
    session: Session,
    *,
    contract_id: int,
    request_id: int,
    actor_id: str,
    changes: Sequence[ChangeInput],
    message: str = "",
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """*Suggest changes*: the request becomes `countered` and a new one, from the actor's
    side, holds `changes` (all of them, as the answering side wants them) and awaits the
    other side's Accept or Decline under the same rules. A counter-offer can itself be
    countered. Repeating it after it is done changes nothing."""
    return propose_changes(
        session,
        contract_id=contract_id,
        actor_id=actor_id,
        changes=changes,
        message=message,
        now=now,
        policy=policy,
        counters_request_id=request_id,
    )


def revise_request(
    session: Session,
    *,
    contract_id: int,
    request_id: int,
    actor_id: str,
    changes: Sequence[ChangeInput],
    message: str = "",
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """*Revise*: the proposing side replaces its own pending request in one step (the old
    one becomes `withdrawn`, "revised as #N")."""
    return propose_changes(
        session,
        contract_id=contract_id,
        actor_id=actor_id,
        changes=changes,
        message=message,
        now=now,
        policy=policy,
        revises_request_id=request_id,
    )
