"""The model's transitions: each consults the rules tables and stamps its own fields.
Plain objects, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from domain.errors import InvalidTransition, RequestNotPending
from domain.model import (
    ChangeRequest,
    Contract,
    ContractStatus,
    Milestone,
    MilestoneStatus,
    RequestStatus,
    Role,
)
from domain.rules import RequestAction

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=3)
CLIENT, FREELANCER = "U0CLIENT", "U0FREELA"


def milestone(status: MilestoneStatus = MilestoneStatus.PENDING) -> Milestone:
    return Milestone(
        number=1,
        title="Design",
        description="",
        amount_minor=150000,
        due_date=date(2027, 1, 15),
        status=status,
        submission_count=0,
        released_automatically=False,
    )


def request(status: RequestStatus = RequestStatus.PENDING) -> ChangeRequest:
    return ChangeRequest(number=3, status=status, proposed_by=FREELANCER, proposed_at=NOW)


def contract(status: ContractStatus = ContractStatus.NEGOTIATING) -> Contract:
    return Contract(id=1, title="Site", status=status)


def test_funding_stamps_who_and_when() -> None:
    m = milestone()
    m.fund(by=CLIENT, at=NOW)
    assert (m.status, m.funded_by, m.funded_at) == (MilestoneStatus.FUNDED, CLIENT, NOW)


def test_submitting_starts_the_review_clock_and_counts_the_submission() -> None:
    m = milestone(MilestoneStatus.FUNDED)
    m.submit(by=FREELANCER, at=NOW, note="", review=timedelta(days=14))
    assert m.status == MilestoneStatus.SUBMITTED
    assert (m.submitted_by, m.submitted_at, m.submission_note) == (FREELANCER, NOW, None)
    assert (m.submission_count, m.auto_release_at) == (1, NOW + timedelta(days=14))


def test_sending_work_back_stops_the_clock() -> None:
    m = milestone(MilestoneStatus.FUNDED)
    m.submit(by=FREELANCER, at=NOW, note="done", review=timedelta(days=14))
    m.send_back(at=LATER, note="More contrast")
    assert m.status == MilestoneStatus.FUNDED and m.auto_release_at is None
    assert (m.changes_requested_at, m.changes_requested_note) == (LATER, "More contrast")


@pytest.mark.parametrize("automatic", [False, True])
def test_releasing_records_how(automatic: bool) -> None:
    m = milestone(MilestoneStatus.SUBMITTED)
    m.release(by="system" if automatic else CLIENT, at=NOW, automatic=automatic)
    assert m.status == MilestoneStatus.RELEASED
    assert (m.released_at, m.released_automatically) == (NOW, automatic)


def test_refunding_ends_the_review_and_deleting_stamps_the_time() -> None:
    m = milestone(MilestoneStatus.FUNDED)
    m.submit(by=FREELANCER, at=NOW, note="", review=timedelta(days=14))
    m.refund(at=LATER)
    assert (m.status, m.refunded_at, m.auto_release_at) == (MilestoneStatus.PENDING, LATER, None)
    future = milestone()
    future.delete(at=NOW)
    assert (future.status, future.deleted_at) == (MilestoneStatus.DELETED, NOW)


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (
            MilestoneStatus.PENDING,
            lambda m: m.submit(by=FREELANCER, at=NOW, note="", review=timedelta(1)),
        ),
        (MilestoneStatus.FUNDED, lambda m: m.release(by=CLIENT, at=NOW, automatic=False)),
        (MilestoneStatus.FUNDED, lambda m: m.delete(at=NOW)),
        (MilestoneStatus.RELEASED, lambda m: m.fund(by=CLIENT, at=NOW)),
        (MilestoneStatus.DELETED, lambda m: m.refund(at=NOW)),
    ],
)
def test_a_transition_the_table_does_not_allow_is_refused_and_changes_nothing(
    status: MilestoneStatus, step: object
) -> None:
    m = milestone(status)
    with pytest.raises(InvalidTransition):
        step(m)  # type: ignore[operator]
    assert m.status == status and m.funded_at is None and m.released_at is None


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (RequestAction.ACCEPT, RequestStatus.ACCEPTED),
        (RequestAction.DECLINE, RequestStatus.DECLINED),
        (RequestAction.WITHDRAW, RequestStatus.WITHDRAWN),
    ],
)
def test_deciding_a_request_stamps_who_and_when(
    action: RequestAction, status: RequestStatus
) -> None:
    r = request()
    r.decide(action, by=CLIENT, at=NOW, reason="Too expensive")
    assert (r.status, r.decided_by, r.decided_at) == (status, CLIENT, NOW)
    assert r.decline_reason == ("Too expensive" if action == RequestAction.DECLINE else None)
    assert r.decided_as(action, CLIENT) and not r.decided_as(action, FREELANCER)


def test_cancelling_a_request_records_why_and_nobody_as_deciding() -> None:
    r = request()
    r.decide(RequestAction.CANCEL, by=None, at=NOW, reason="milestone 2 was released")
    assert (r.status, r.decided_by, r.cancel_reason) == (
        RequestStatus.CANCELLED,
        None,
        "milestone 2 was released",
    )


def test_a_decided_request_can_not_be_decided_again() -> None:
    r = request(RequestStatus.WITHDRAWN)
    with pytest.raises(RequestNotPending, match="Change request #3 is already withdrawn"):
        r.decide(RequestAction.ACCEPT, by=CLIENT, at=NOW)
    assert r.decided_at is None


def test_agreement_per_side_activation_and_clearing() -> None:
    c = contract()
    assert c.agree(role=Role.CLIENT, by=CLIENT, at=NOW)
    assert not c.agree(role=Role.CLIENT, by=CLIENT, at=LATER)  # already
    assert not c.both_agreed
    assert c.agree(role=Role.FREELANCER, by=FREELANCER, at=LATER)
    assert c.both_agreed and c.provider_agreed_by == FREELANCER
    assert c.clear_agreement() and not c.clear_agreement()
    assert (c.client_agreed_at, c.provider_agreed_by, c.provider_agreed_at) == (None, None, None)
    c.activate(at=LATER)
    assert (c.status, c.activated_at) == (ContractStatus.ACTIVE, LATER)


def test_ending_stamps_who_and_a_closed_contract_can_not_end_again() -> None:
    c = contract(ContractStatus.ACTIVE)
    c.end(by=CLIENT, at=NOW)
    assert (c.status, c.closed_by, c.closed_at) == (ContractStatus.CLOSED, CLIENT, NOW)
    with pytest.raises(InvalidTransition):
        c.end(by=CLIENT, at=LATER)
    assert c.closed_at == NOW
