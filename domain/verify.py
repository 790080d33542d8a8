"""`milestone-bot ledger verify`: recompute every contract's escrow from its ledger.

The ledger is the record; milestone states, their timestamps and the money figures
kept in the history (events) are derived from it and must agree with it. `verify`
reads everything in a few bulk queries and returns one `Discrepancy` per problem,
each naming its contract (and milestone):

- per milestone, in entry order: one `fund` first, `top_up`s only while funded, at
  most one `release` or one `refund`, nothing after it, never a negative balance;
  amounts positive, keys in their business form and unique;
- per state: `pending` (never funded) and `deleted` hold nothing and have no entries;
  `funded`/`submitted` hold exactly the milestone's amount (top-ups included);
  `released` has one release equal to what was held; a refunded milestone (back to
  `pending` with `refunded_at`) has one refund equal to what was held;
- the milestone's `funded_at`/`released_at`/`refunded_at` match its entries;
- the contract's escrow never goes negative in entry order, is empty once the contract
  is closed, and nothing moves before the contract is active;
- the history agrees: `milestone_funded`, `escrow_topped_up` and `milestone_released`
  events carry the amounts of the entries, and `contract_ended` the refunded total;
- partial releases (`release:<milestone>:part:<k>`, k = 1, 2, …) come while the
  milestone is funded, each leaves something held, add up to its `released_early_minor`
  and match `milestone_partly_released` events; a funded or submitted milestone holds
  its amount less them, and its final release releases the rest;
- bonuses (`bonus:<contract>:<k>`) belong to no milestone, never count in escrow, and
  match `bonus_paid` events;
- a disputed milestone holds what a funded one holds; a dispute settled by a split has
  one release and then one refund of the rest (released, with `refunded_at`), its refund
  matches the `dispute_settled` event and is not counted as the ending's refund.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.ledger import is_partial_release, partial_release_key
from domain.model import (
    Contract,
    ContractStatus,
    Event,
    EventKind,
    LedgerEntry,
    LedgerKind,
    Milestone,
    MilestoneStatus,
)
from domain.text import counted

# The history events that carry money figures.
_MONEY_EVENTS = (
    EventKind.MILESTONE_FUNDED,
    EventKind.ESCROW_TOPPED_UP,
    EventKind.MILESTONE_RELEASED,
    EventKind.CONTRACT_ENDED,
    EventKind.MILESTONE_PARTLY_RELEASED,
    EventKind.BONUS_PAID,
    EventKind.DISPUTE_SETTLED,
)
# Where a milestone's escrow is held (a dispute freezes it, still held).
_HOLDING = (MilestoneStatus.FUNDED, MilestoneStatus.SUBMITTED, MilestoneStatus.DISPUTED)


@dataclass(frozen=True)
class Discrepancy:
    """One difference between the ledger and what is stored beside it."""

    contract_id: int
    contract_title: str
    problem: str
    milestone_number: int | None = None

    def __str__(self) -> str:
        where = f"contract {self.contract_id} ({self.contract_title})"
        if self.milestone_number is not None:
            where += f", milestone {self.milestone_number}"
        return f"{where}: {self.problem}"


@dataclass(frozen=True)
class Verification:
    contracts: int
    entries: int
    discrepancies: tuple[Discrepancy, ...]

    @property
    def ok(self) -> bool:
        return not self.discrepancies


def verify(session: Session) -> list[Discrepancy]:
    """Every difference between the ledger and the state beside it (empty: all agree)."""
    return list(check(session).discrepancies)


def check(session: Session) -> Verification:
    """`verify` with the number of contracts and entries looked at."""
    contracts = list(session.scalars(select(Contract).order_by(Contract.id)))
    milestones: dict[int, list[Milestone]] = defaultdict(list)
    for milestone in session.scalars(select(Milestone).order_by(Milestone.id)):
        milestones[milestone.contract_id].append(milestone)
    entries: dict[int, list[LedgerEntry]] = defaultdict(list)
    for entry in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)):
        entries[entry.contract_id].append(entry)
    events: dict[int, list[Event]] = defaultdict(list)
    for event in session.scalars(
        select(Event).where(Event.kind.in_(_MONEY_EVENTS)).order_by(Event.id)
    ):
        events[event.contract_id].append(event)
    total_entries = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0

    found: list[Discrepancy] = []
    known = {c.id for c in contracts}
    for contract in contracts:
        found += _check_contract(
            contract, milestones[contract.id], entries[contract.id], events[contract.id]
        )
    for contract_id in sorted(set(entries) - known):
        found.append(
            Discrepancy(contract_id, "?", f"{len(entries[contract_id])} entries of no contract")
        )
    duplicates = [
        key for key, n in Counter(e.key for rows in entries.values() for e in rows).items() if n > 1
    ]
    for key in sorted(duplicates):
        owner = next(e for rows in entries.values() for e in rows if e.key == key)
        title = next((c.title for c in contracts if c.id == owner.contract_id), "?")
        found.append(Discrepancy(owner.contract_id, title, f"ledger key {key!r} is used twice"))
    return Verification(len(contracts), int(total_entries), tuple(found))


class _Problems:
    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.found: list[Discrepancy] = []

    def add(self, problem: str, milestone: Milestone | None = None) -> None:
        self.found.append(
            Discrepancy(
                self.contract.id,
                self.contract.title,
                problem,
                milestone.number if milestone is not None else None,
            )
        )


def _check_contract(
    contract: Contract,
    milestones: Sequence[Milestone],
    entries: Sequence[LedgerEntry],
    events: Sequence[Event],
) -> list[Discrepancy]:
    problems = _Problems(contract)
    by_id = {m.id: m for m in milestones}
    per_milestone: dict[int, list[LedgerEntry]] = defaultdict(list)
    balance = 0
    negative_reported = False
    bonuses = 0
    for entry in entries:
        if entry.kind == LedgerKind.BONUS:  # outside escrow
            bonuses += 1
            _check_bonus(problems, entry, bonuses)
            continue
        if entry.milestone_id not in by_id:
            problems.add(
                f"ledger entry {entry.id} ({entry.key}) is for milestone id "
                f"{entry.milestone_id}, which is not part of this contract"
            )
            continue
        per_milestone[entry.milestone_id].append(entry)
        balance += _signed(entry)
        if balance < 0 and not negative_reported:
            negative_reported = True
            problems.add(f"escrow goes negative ({balance}) at ledger entry {entry.id}")
    for milestone in milestones:
        _check_milestone(problems, milestone, per_milestone[milestone.id])
    if contract.status == ContractStatus.NEGOTIATING and entries:
        problems.add(f"is still negotiating but has {len(entries)} ledger entries")
    if contract.status == ContractStatus.CLOSED and balance != 0:
        problems.add(f"is closed but escrow still holds {balance}")
    _check_history(problems, milestones, entries, events)
    return problems.found


def _check_bonus(problems: _Problems, entry: LedgerEntry, number: int) -> None:
    expected = f"bonus:{problems.contract.id}:{number}"
    if entry.amount_minor <= 0:
        problems.add(f"bonus entry {entry.id} ({entry.key}) has a non-positive amount")
    if entry.key != expected:
        problems.add(f"bonus entry {entry.id} has key {entry.key!r}, expected {expected!r}")
    if entry.milestone_id is not None:
        problems.add(f"bonus entry {entry.id} names a milestone; a bonus is outside escrow")


def _signed(entry: LedgerEntry) -> int:
    if entry.kind in (LedgerKind.FUND, LedgerKind.TOP_UP):
        return entry.amount_minor
    return -entry.amount_minor


def _expected_key(entry: LedgerEntry) -> str:
    if entry.kind == LedgerKind.TOP_UP:
        return f"top_up:{entry.request_id}:{entry.milestone_id}"
    return f"{entry.kind.value}:{entry.milestone_id}"


def _check_milestone(
    problems: _Problems, milestone: Milestone, entries: Sequence[LedgerEntry]
) -> None:
    def add(problem: str) -> None:
        problems.add(problem, milestone)

    held = 0
    funded = released = refunded = 0
    parts = early = 0  # partial releases, and what they released
    # A dispute settled by a split: a release of part of what was held, then a refund
    # of the rest (the history's `dispute_settled` says how much, _check_history).
    split = milestone.status == MilestoneStatus.RELEASED and milestone.refunded_at is not None
    closed_by: LedgerEntry | None = None
    for entry in entries:
        partial = is_partial_release(entry)
        if entry.amount_minor <= 0:
            add(f"ledger entry {entry.id} ({entry.key}) has a non-positive amount")
        expected = partial_release_key(milestone.id, parts + 1) if partial else _expected_key(entry)
        if entry.key != expected:
            add(f"ledger entry {entry.id} has key {entry.key!r}, expected {expected!r}")
        rest_of_split = (
            split and closed_by is not None and closed_by.kind == LedgerKind.RELEASE
        ) and entry.kind == LedgerKind.REFUND
        if closed_by is not None and not rest_of_split:
            add(f"{entry.kind.value} entry {entry.id} comes after the {closed_by.kind.value}")
        if entry.kind == LedgerKind.FUND:
            funded += 1
            if funded > 1:
                add(f"is funded {funded} times (entry {entry.id})")
        elif entry.kind == LedgerKind.TOP_UP:
            if funded == 0:
                add(f"top-up entry {entry.id} comes before the milestone was funded")
        elif partial:
            parts += 1
            early += entry.amount_minor
            if funded == 0:
                add(f"partial release entry {entry.id} comes before the milestone was funded")
            if entry.amount_minor >= held:
                add(
                    f"partial release entry {entry.id} moves {entry.amount_minor} of the "
                    f"{held} held: a partial release leaves part of it held"
                )
        else:
            if entry.amount_minor != held and not (split and entry.kind == LedgerKind.RELEASE):
                add(
                    f"{entry.kind.value} entry {entry.id} moves {entry.amount_minor} "
                    f"but {held} was held"
                )
            closed_by = entry
            if entry.kind == LedgerKind.RELEASE:
                released += 1
            else:
                refunded += 1
        held += _signed(entry)
        if held < 0:
            add(f"holds a negative balance ({held}) after entry {entry.id}")
    deposited = sum(e.amount_minor for e in entries if _in(e))
    status = milestone.status
    if released > 1:
        add(f"is released {released} times")
    if refunded > 1:
        add(f"is refunded {refunded} times")
    if released and refunded and not split:
        add("is both released and refunded")
    if status in _HOLDING:
        if funded != 1 or released or refunded:
            add(f"is {status.value} but its ledger shows {_summary(entries)}")
        if held != milestone.amount_minor - early:
            less = f" less {early} released early" if early else ""
            add(f"is {status.value} for {milestone.amount_minor}{less} but {held} is held")
    elif status == MilestoneStatus.RELEASED:
        if released != 1 or funded != 1:
            add(f"is released but its ledger shows {_summary(entries)}")
        if deposited != milestone.amount_minor:
            add(f"is released for {milestone.amount_minor} but {deposited} was deposited")
    elif status == MilestoneStatus.PENDING and milestone.refunded_at is not None:
        if refunded != 1 or funded != 1 or released:
            add(f"was refunded but its ledger shows {_summary(entries)}")
    elif entries:  # pending and never funded, or deleted
        add(f"is {status.value} and was never funded, but its ledger shows {_summary(entries)}")
    if held != 0 and status not in _HOLDING:
        add(f"is {status.value} but {held} is still held for it")
    if (milestone.released_early_minor or 0) != early:
        add(
            f"says {milestone.released_early_minor} was released early but its partial "
            f"releases total {early}"
        )
    for label, stamp, count in (
        ("funded_at", milestone.funded_at, funded),
        ("released_at", milestone.released_at, released),
        ("refunded_at", milestone.refunded_at, refunded),
    ):
        if (stamp is not None) != bool(count):
            state = "is set" if stamp is not None else "is empty"
            found = counted(count, "matching entry", "matching entries")
            add(f"{label} {state} but the ledger has {found}")


def _in(entry: LedgerEntry) -> bool:
    return entry.kind in (LedgerKind.FUND, LedgerKind.TOP_UP)


def _summary(entries: Iterable[LedgerEntry]) -> str:
    counts = Counter(e.kind.value for e in entries)
    if not counts:
        return "no entries"
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def _check_history(
    problems: _Problems,
    milestones: Sequence[Milestone],
    entries: Sequence[LedgerEntry],
    events: Sequence[Event],
) -> None:
    """The money figures the history shows agree with the ledger."""
    number_of = {m.id: m.number for m in milestones}
    by_number = {m.number: m for m in milestones}
    from_ledger: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    from_history: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    kinds = {
        LedgerKind.FUND: EventKind.MILESTONE_FUNDED,
        LedgerKind.TOP_UP: EventKind.ESCROW_TOPPED_UP,
        LedgerKind.RELEASE: EventKind.MILESTONE_RELEASED,
    }
    refunded = 0
    # A settled dispute's refund is the settlement's, not the ending's.
    settled = {e.milestone_number for e in events if e.kind == EventKind.DISPUTE_SETTLED}
    for entry in entries:
        settling = None if entry.milestone_id is None else number_of.get(entry.milestone_id)
        if entry.kind == LedgerKind.REFUND and settling is not None and settling in settled:
            from_ledger[(EventKind.DISPUTE_SETTLED, settling)].append(entry.amount_minor)
        elif entry.kind == LedgerKind.REFUND:
            refunded += entry.amount_minor
        elif entry.kind == LedgerKind.BONUS:
            from_ledger[(EventKind.BONUS_PAID, None)].append(entry.amount_minor)
        elif entry.milestone_id in number_of:
            as_event = (
                EventKind.MILESTONE_PARTLY_RELEASED
                if is_partial_release(entry)
                else kinds[entry.kind]
            )
            from_ledger[(as_event, number_of[entry.milestone_id])].append(entry.amount_minor)
    ended: list[int] = []
    for event in events:
        if event.kind == EventKind.DISPUTE_SETTLED:
            back = _int(event.data, "to_client_minor")
            if back != 0:  # nothing back to the client: no refund entry
                from_history[(event.kind, event.milestone_number)].append(
                    back if back is not None else -1
                )
            continue
        amount = _int(
            event.data,
            "refunded_minor" if event.kind == EventKind.CONTRACT_ENDED else "amount_minor",
        )
        if event.kind == EventKind.CONTRACT_ENDED:
            ended.append(amount if amount is not None else -1)
        else:
            from_history[(event.kind, event.milestone_number)].append(
                amount if amount is not None else -1
            )
    for key in sorted(set(from_ledger) | set(from_history), key=lambda k: (k[1] or 0, k[0])):
        ledger_amounts, history_amounts = from_ledger[key], from_history[key]
        if sorted(ledger_amounts) != sorted(history_amounts):
            kind, number = key
            problems.add(
                f"the history's {kind} amounts {sorted(history_amounts)} differ from the "
                f"ledger's {sorted(ledger_amounts)}",
                by_number.get(number) if number is not None else None,
            )
    if len(ended) > 1:
        problems.add(f"the history shows the contract ended {len(ended)} times")
    if ended and ended[-1] != refunded:
        problems.add(f"the history says {ended[-1]} was refunded on ending, the ledger {refunded}")
    if not ended and refunded:
        problems.add(f"{refunded} was refunded but the contract never ended")


def _int(data: dict[str, Any] | None, key: str) -> int | None:
    value = (data or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
