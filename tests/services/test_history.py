"""History: every state change is an event (who, when, what, before → after); the ledger
and the history agree; every change asks for the cards to be refreshed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import queries, record, services
from domain.db import read_transaction
from domain.model import SYSTEM_ACTOR, Event, LedgerKind, OutboxMessage
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone
from handlers.blocks.history import build_history
from handlers.blocks.message import Message
from tests.blocks.support import all_text
from tests.factories import (
    CLIENT,
    DUE,
    FREELANCER,
    MANAGER,
    MEMBER,
    NOW,
    active_contract,
    add,
    funded_contract,
    later,
    new_contract,
    submitted_contract,
)
from tests.services.support import counts, events, ledger_entries, load


def whole_life(session: Session) -> int:
    """A contract taken through every kind of change, one hour apart."""
    contract_id = new_contract(session)
    add(session, contract_id, "Design", "1500")
    add(session, contract_id, "Build", "2500", actor=FREELANCER)
    services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, title="Build v2")],
        message="renamed",
        now=later(1),
    )
    services.agree_to_terms(session, contract_id=contract_id, actor_id=CLIENT, now=later(2))
    services.agree_to_terms(session, contract_id=contract_id, actor_id=FREELANCER, now=later(3))
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=later(4))
    increase = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(1, amount="1600")],
        now=later(5),
    )
    services.accept_request(session, actor_id=CLIENT, now=later(6), request_id=increase.request_id)
    services.submit_work(
        session, contract_id=contract_id, actor_id=FREELANCER, note="v1", now=later(7)
    )
    services.request_changes(
        session, contract_id=contract_id, actor_id=CLIENT, note="fix", now=later(8)
    )
    services.submit_work(
        session, contract_id=contract_id, actor_id=FREELANCER, note="v2", now=later(9)
    )
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(10))
    declined = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneDeletion(2)],
        now=later(11),
    )
    services.decline_request(
        session, actor_id=CLIENT, now=later(12), reason="no", request_id=declined.request_id
    )
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=later(13))
    services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[NewMilestone("Extra", "10", DUE)],
        now=later(14),
    )
    services.end_contract(session, contract_id=contract_id, actor_id=FREELANCER, now=later(15))
    return contract_id


def test_every_state_change_is_an_event_with_who_and_when(session: Session) -> None:
    contract_id = whole_life(session)

    shown = [
        (e.kind, e.actor, e.at, e.milestone_number, e.request_number)
        for e in events(session, contract_id)
    ]

    assert shown == [
        ("contract_created", CLIENT, NOW, None, None),
        ("milestone_added", CLIENT, NOW, 1, None),
        ("milestone_added", FREELANCER, NOW, 2, None),
        ("milestone_edited", FREELANCER, later(1), 2, None),
        ("terms_agreed", CLIENT, later(2), None, None),
        ("terms_agreed", FREELANCER, later(3), None, None),
        ("contract_activated", SYSTEM_ACTOR, later(3), None, None),
        ("milestone_funded", CLIENT, later(4), 1, None),
        ("request_proposed", FREELANCER, later(5), None, 1),
        ("milestone_edited", FREELANCER, later(6), 1, 1),
        ("escrow_topped_up", CLIENT, later(6), 1, 1),
        ("request_accepted", CLIENT, later(6), None, 1),
        ("work_submitted", FREELANCER, later(7), 1, None),
        ("changes_requested", CLIENT, later(8), 1, None),
        ("work_submitted", FREELANCER, later(9), 1, None),
        ("milestone_released", CLIENT, later(10), 1, None),
        ("request_proposed", FREELANCER, later(11), None, 2),
        ("request_declined", CLIENT, later(12), None, 2),
        ("milestone_funded", CLIENT, later(13), 2, None),
        ("request_proposed", FREELANCER, later(14), None, 3),
        ("request_cancelled", SYSTEM_ACTOR, later(15), None, 3),
        ("contract_ended", FREELANCER, later(15), None, None),
    ]


def test_edit_events_record_before_and_after_of_the_changed_fields(session: Session) -> None:
    contract_id = whole_life(session)
    edits = [e for e in events(session, contract_id) if e.kind == "milestone_edited"]

    assert [(e.data["before"], e.data["after"]) for e in edits] == [
        ({"title": "Build"}, {"title": "Build v2"}),
        ({"amount_minor": 150000}, {"amount_minor": 160000}),
    ]
    assert edits[0].data["message"] == "renamed"


def test_events_record_the_details_a_reader_needs(session: Session) -> None:
    contract_id = whole_life(session)
    by_kind: dict[str, list[Event]] = {}
    for event in events(session, contract_id):
        by_kind.setdefault(event.kind, []).append(event)

    assert by_kind["contract_created"][0].data["parties"] == {
        CLIENT: "client",
        FREELANCER: "freelancer",
    }
    assert by_kind["milestone_added"][0].data["after"] == {
        "title": "Design",
        "description": "",
        "amount_minor": 150000,
        "due_date": "2026-12-01",
    }
    assert [e.data["note"] for e in by_kind["work_submitted"]] == ["v1", "v2"]
    assert by_kind["changes_requested"][0].data["note"] == "fix"
    assert by_kind["request_declined"][0].data["reason"] == "no"
    assert by_kind["request_proposed"][0].data["changes"] == [
        {"kind": "edit", "milestone_number": 1, "fields": {"amount_minor": 160000}}
    ]
    assert by_kind["request_cancelled"][0].data["reason"] == "the contract ended"
    assert by_kind["milestone_released"][0].data == {
        "amount_minor": 160000,
        "automatic": False,
        "title": "Design",
    }


def test_each_ledger_entry_has_a_matching_event(session: Session) -> None:
    contract_id = whole_life(session)
    history = events(session, contract_id)
    entries = ledger_entries(session, contract_id)
    assert [e.kind for e in entries] == [
        LedgerKind.FUND,
        LedgerKind.TOP_UP,
        LedgerKind.RELEASE,
        LedgerKind.FUND,
        LedgerKind.REFUND,
    ]
    numbers = {m.id: m.number for m in load(session, contract_id).milestones}
    event_kind = {
        LedgerKind.FUND: "milestone_funded",
        LedgerKind.TOP_UP: "escrow_topped_up",
        LedgerKind.RELEASE: "milestone_released",
    }

    for entry in entries:
        if entry.kind == LedgerKind.REFUND:
            matches = [
                e
                for e in history
                if e.kind == "contract_ended"
                and e.data["refunded_minor"] == entry.amount_minor
                and (e.actor, e.at) == (entry.actor, entry.at)
            ]
        else:
            matches = [
                e
                for e in history
                if e.kind == event_kind[entry.kind]
                and e.milestone_number == numbers[entry.milestone_id]
                and e.data["amount_minor"] == entry.amount_minor
                and (e.actor, e.at) == (entry.actor, entry.at)
            ]
        assert len(matches) == 1, entry.key


def test_every_money_event_has_its_ledger_entry(session: Session) -> None:
    contract_id = whole_life(session)
    money_events = [
        e
        for e in events(session, contract_id)
        if e.kind in ("milestone_funded", "escrow_topped_up", "milestone_released")
    ]
    assert len(money_events) == len(
        [e for e in ledger_entries(session, contract_id) if e.kind != LedgerKind.REFUND]
    )


def test_automatic_release_is_recorded_as_done_by_the_system(session: Session) -> None:
    contract_id = submitted_contract(session)
    first = load(session, contract_id).milestone(1)
    assert first is not None

    services.auto_release(session, milestone_id=first.id, now=later(days=14))

    released = events(session, contract_id)[-1]
    assert (released.kind, released.actor, released.at) == (
        "milestone_released",
        SYSTEM_ACTOR,
        later(days=14),
    )
    assert ledger_entries(session, contract_id)[-1].actor == SYSTEM_ACTOR


def test_event_time_is_the_given_now_in_utc(session: Session) -> None:
    contract_id = new_contract(session)
    tokyo = datetime(2026, 11, 3, 18, 30, tzinfo=ZoneInfo("Asia/Tokyo"))

    services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("Design", "1", DUE)],
        now=tokyo,
    )

    at = events(session, contract_id)[-1].at
    assert at == datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
    assert at.utcoffset() == timedelta(0)


def test_member_submission_is_recorded_under_the_member(session: Session) -> None:
    contract_id = active_contract(session, agency=True)
    services.fund_milestone(session, contract_id=contract_id, actor_id=CLIENT, now=NOW)

    services.submit_work(session, contract_id=contract_id, actor_id=MEMBER, now=NOW)

    assert events(session, contract_id)[-1].actor == MEMBER
    agreed = [e for e in events(session, contract_id) if e.kind == "terms_agreed"]
    assert [e.actor for e in agreed] == [CLIENT, MANAGER]


def test_history_query_returns_the_newest_events_oldest_first(session: Session) -> None:
    contract_id = whole_life(session)
    every = events(session, contract_id)

    with read_transaction(session):
        newest = queries.history(session, contract_id, limit=3)

    assert [e.id for e in newest] == [e.id for e in every[-3:]]


def test_every_change_asks_for_the_contract_card_and_homes_to_be_refreshed(
    session: Session,
) -> None:
    contract_id = active_contract(session)
    _, outbox_before, _ = counts(session)

    outcome = services.fund_milestone(
        session, contract_id=contract_id, actor_id=CLIENT, now=later(1)
    )

    with read_transaction(session):
        written = list(
            session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(outcome.outbox_ids)))
        )
    assert len(written) == counts(session)[1] - outbox_before
    intents = {(m.kind, m.subject_id, m.user_id) for m in written}
    assert ("contract_card", contract_id, None) in intents
    assert {("home", None, CLIENT), ("home", None, FREELANCER)} <= intents
    assert all(m.state == "pending" and m.next_attempt_at == later(1) for m in written)


def test_a_proposal_is_announced_by_its_own_card(session: Session) -> None:
    contract_id = active_contract(session)

    outcome = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, title="x")],
        now=NOW,
    )

    with read_transaction(session):
        kinds = {
            (m.kind, m.subject_id)
            for m in session.scalars(
                select(OutboxMessage).where(OutboxMessage.id.in_(outcome.outbox_ids))
            )
        }
    assert ("request_card", outcome.request_id) in kinds
    assert not any(kind == "announce" for kind, _ in kinds)


# --- the record as it was: titles at the time ------------------------------------------


def text_of(message: Message) -> str:
    return all_text([block.to_dict() for block in message.blocks])


def renamed_after_funding(session: Session) -> int:
    """Milestone 1 "Milestone 1" is funded, renamed "Design v2" by an accepted request,
    then submitted and approved."""
    contract_id = funded_contract(session)
    rename = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(1, title="Design v2")],
        now=later(1),
    )
    services.accept_request(session, actor_id=CLIENT, now=later(2), request_id=rename.request_id)
    services.submit_work(
        session, contract_id=contract_id, actor_id=FREELANCER, note="done", now=later(3)
    )
    services.approve_work(session, contract_id=contract_id, actor_id=CLIENT, now=later(4))
    return contract_id


def test_events_that_name_a_milestone_carry_its_title_at_the_time(session: Session) -> None:
    contract_id = renamed_after_funding(session)

    titled = [
        (e.kind, e.data.get("title"))
        for e in events(session, contract_id)
        if e.kind in ("milestone_funded", "work_submitted", "milestone_released")
    ]

    assert titled == [
        ("milestone_funded", "Milestone 1"),
        ("work_submitted", "Design v2"),
        ("milestone_released", "Design v2"),
    ]
    edit = next(e for e in events(session, contract_id) if e.kind == "milestone_edited")
    assert "title" not in edit.data  # its before → after says it
    assert (edit.data["before"], edit.data["after"]) == (
        {"title": "Milestone 1"},
        {"title": "Design v2"},
    )


def test_history_shows_each_event_with_the_title_it_had_then(session: Session) -> None:
    contract_id = renamed_after_funding(session)

    with read_transaction(session):
        contract = queries.load_contract(session, contract_id)
        shown = text_of(build_history(contract, queries.history(session, contract_id), now=NOW))

    assert f"<@{CLIENT}> funded milestone 1 *Milestone 1* with $1,500.00." in shown
    assert f"<@{FREELANCER}> submitted work for milestone 1 *Design v2*." in shown
    assert "funded milestone 1 *Design v2*" not in shown


def test_events_written_before_titles_were_recorded_are_named_by_replaying_edits(
    session: Session,
) -> None:
    """Events of the first wave carry no title: the title then is found by undoing the
    later renames, newest first, from the current title."""
    contract_id = renamed_after_funding(session)
    services.change_milestones(
        session,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(2, title="Build v2")],
        now=later(5),
    )
    with session.begin():  # as the first wave wrote them: no "title" in the data
        for event in session.scalars(select(Event).where(Event.contract_id == contract_id)):
            if "title" in event.data:
                event.data = {k: v for k, v in event.data.items() if k != "title"}

    with read_transaction(session):
        contract = queries.load_contract(session, contract_id)
        history = queries.history(session, contract_id)
        then = record.titles_then(contract, history)
        shown = text_of(build_history(contract, history, now=NOW))
        newest = record.titles_then(contract, history[-3:])

    named = {(str(e.kind), e.milestone_number): then.get(e.id) for e in history}
    assert named[("milestone_added", 1)] == "Milestone 1"
    assert named[("milestone_funded", 1)] == "Milestone 1"
    assert named[("work_submitted", 1)] == "Design v2"
    assert named[("milestone_added", 2)] == "Milestone 2"
    assert named[("milestone_edited", 2)] == "Build v2"
    assert "funded milestone 1 *Milestone 1*" in shown
    assert "released" in shown and "milestone 1 *Design v2*" in shown
    # The newest part of the history alone gives the same answers (a limited query).
    assert all(then[event_id] == title for event_id, title in newest.items())
