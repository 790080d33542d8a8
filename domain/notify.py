"""Telling people directly: each person's choice of where they hear what needs their
action (`Notify`), and the direct messages written with the change that made something
wait for someone.

A service never decides about direct messages itself: the reminder hooks it already
calls (domain.reminders: a request proposed, work submitted, a milestone released) say
who now owes what (`Changes.awaits`), and the transaction's writer
(domain.services._writes) turns that into a `direct` outbox intent for each of those
people who chose `dm` or `both` — in the same transaction as the change. The intent
names the waiting item (its `WaitingKind` and id, domain.waiting); at send time the
delivery checks that it still waits and renders it from current state.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.db import read_transaction, write_transaction
from domain.model import NotificationChoice, Notify
from domain.waiting import WaitingItem, WaitingKind, waiting_for

DEFAULT = Notify.BOTH
# Who gets a direct message for each new item (digest people get the morning list).
DIRECT = frozenset({Notify.DM, Notify.BOTH})
# Whose reminders are a reply in the channel thread that mentions them.
IN_THREAD = frozenset({Notify.CHANNEL, Notify.BOTH, Notify.DIGEST})


@dataclass(frozen=True)
class Awaiting:
    """`user_id` now owes `kind` on `subject_id` (a request or milestone id) in a contract."""

    contract_id: int
    team_id: str
    user_id: str
    kind: WaitingKind
    subject_id: int


@dataclass(frozen=True)
class Chosen:
    """What `choose` did: the choice now, the one before, and whether it was already so."""

    choice: Notify
    previous: Notify
    already_done: bool


def choose(
    session: Session, *, user_id: str, team_id: str | None, choice: Notify, now: datetime
) -> Chosen:
    """`user_id` chooses where they are told what needs their action."""
    for attempt in range(2):
        try:
            with write_transaction(session):
                row = session.get(NotificationChoice, user_id, with_for_update=True)
                if row is None:
                    session.add(
                        NotificationChoice(
                            user_id=user_id, choice=choice, team_id=team_id or None, chosen_at=now
                        )
                    )
                    return Chosen(choice, DEFAULT, already_done=choice == DEFAULT)
                previous = row.choice
                if team_id:
                    row.team_id = team_id
                if previous == choice:
                    return Chosen(choice, previous, already_done=True)
                row.choice, row.chosen_at, row.next_digest_at = choice, now, None
                return Chosen(choice, previous, already_done=False)
        except IntegrityError:
            if attempt:  # chosen twice at once, twice in a row: should not happen
                raise
    raise AssertionError("unreachable")


def choice_of(session: Session, user_id: str) -> Notify:
    return choices_of(session, [user_id])[user_id]


def choices_of(session: Session, user_ids: Collection[str]) -> dict[str, Notify]:
    """Each person's choice (`DEFAULT` for whoever never chose), inside the caller's
    transaction if there is one."""
    wanted = list(dict.fromkeys(user_ids))
    found: dict[str, Notify] = dict.fromkeys(wanted, DEFAULT)
    if not wanted:
        return found
    with read_transaction(session):
        rows = session.execute(
            select(NotificationChoice.user_id, NotificationChoice.choice).where(
                NotificationChoice.user_id.in_(wanted)
            )
        )
        found.update({row.user_id: row.choice for row in rows})
    return found


def told_directly(session: Session, awaiting: Iterable[Awaiting]) -> list[Awaiting]:
    """Those of `awaiting` to send as direct messages now: each item once, to people who
    chose `dm` or `both`."""
    unique = list(dict.fromkeys(awaiting))
    if not unique:
        return []
    choices = choices_of(session, {a.user_id for a in unique})
    return [a for a in unique if choices[a.user_id] in DIRECT]


def still_waiting(
    session: Session,
    user_id: str,
    kind: WaitingKind,
    subject_id: int,
    *,
    contract_id: int | None,
    now: datetime,
) -> WaitingItem | None:
    """The item a direct message is about, if `user_id` still owes it (else None)."""
    for item in waiting_for(session, user_id, now=now):
        if contract_id is not None and item.contract.id != contract_id:
            continue
        if item.kind == kind and subject_id in _ids(item):
            return item
    return None


def _ids(item: WaitingItem) -> set[int]:
    """The ids `Changes.awaits` may name an item by: its request, milestone or dispute;
    the contract for an item about the whole contract (one of its kind per contract)."""
    found = {s.id for s in (item.request, item.milestone, item.dispute) if s is not None}
    if not found or item.kind in _ONE_PER_CONTRACT:
        found.add(item.contract.id)
    return found


_ONE_PER_CONTRACT = frozenset({WaitingKind.ENDING_NOTICE, WaitingKind.ADD_MILESTONES})
