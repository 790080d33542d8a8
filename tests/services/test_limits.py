"""Limits (product.md): texts, milestone count, amounts, dates. Beyond one, nothing is stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from domain import services
from domain.errors import InvalidAmount, InvalidInput, LimitExceeded
from domain.policy import MAX_MILESTONES, MAX_TEXT, MAX_TITLE, Policy
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone
from tests.factories import (
    CLIENT,
    DUE,
    FREELANCER,
    NOW,
    active_contract,
    funded_contract,
    new_contract,
    submitted_contract,
)
from tests.services.support import exported, milestone, refuse, request

TODAY = NOW.date()


def change(session: Session, contract_id: int, *changes: Any, **kwargs: Any) -> services.Outcome:
    kwargs.setdefault("actor_id", CLIENT)
    kwargs.setdefault("now", NOW)
    return services.change_milestones(
        session, contract_id=contract_id, changes=list(changes), **kwargs
    )


# --- texts -------------------------------------------------------------------------

# (name, build a call that puts `text` where the limit applies) for every text a
# person can type into a service.
TextCase = Callable[[Session, str], tuple[Callable[..., Any], dict[str, Any]]]


def _milestone_title(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = new_contract(session)
    return services.change_milestones, {
        "contract_id": contract_id,
        "actor_id": CLIENT,
        "changes": [NewMilestone(text, "100", DUE)],
        "now": NOW,
    }


def _edited_title(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = active_contract(session)
    return services.change_milestones, {
        "contract_id": contract_id,
        "actor_id": CLIENT,
        "changes": [MilestoneEdit(1, title=text)],
        "now": NOW,
    }


def _proposed_title(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = active_contract(session)
    return services.propose_changes, {
        "contract_id": contract_id,
        "actor_id": FREELANCER,
        "changes": [NewMilestone(text, "100", DUE)],
        "now": NOW,
    }


def _description(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = new_contract(session)
    return services.change_milestones, {
        "contract_id": contract_id,
        "actor_id": FREELANCER,
        "changes": [NewMilestone("Design", "100", DUE, text)],
        "now": NOW,
    }


def _edited_description(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = funded_contract(session)
    return services.propose_changes, {
        "contract_id": contract_id,
        "actor_id": FREELANCER,
        "changes": [MilestoneEdit(1, description=text)],
        "now": NOW,
    }


def _direct_message(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = active_contract(session)
    return services.change_milestones, {
        "contract_id": contract_id,
        "actor_id": CLIENT,
        "changes": [MilestoneDeletion(2)],
        "message": text,
        "now": NOW,
    }


def _request_message(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = active_contract(session)
    return services.propose_changes, {
        "contract_id": contract_id,
        "actor_id": FREELANCER,
        "changes": [MilestoneDeletion(2)],
        "message": text,
        "now": NOW,
    }


def _submission_note(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = funded_contract(session)
    return services.submit_work, {
        "contract_id": contract_id,
        "actor_id": FREELANCER,
        "note": text,
        "now": NOW,
    }


def _changes_note(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = submitted_contract(session)
    return services.request_changes, {
        "contract_id": contract_id,
        "actor_id": CLIENT,
        "note": text,
        "now": NOW,
    }


def _decline_reason(session: Session, text: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    contract_id = active_contract(session)
    outcome = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneDeletion(2)],
        now=NOW,
    )
    return services.decline_request, {
        "actor_id": CLIENT,
        "request_id": outcome.request_id,
        "reason": text,
        "now": NOW,
    }


TEXTS: dict[str, tuple[TextCase, str, int]] = {
    "milestone title": (_milestone_title, "title", MAX_TITLE),
    "edited title": (_edited_title, "title", MAX_TITLE),
    "proposed title": (_proposed_title, "title", MAX_TITLE),
    "description": (_description, "description", MAX_TEXT),
    "proposed description": (_edited_description, "description", MAX_TEXT),
    "message of a direct change": (_direct_message, "message", MAX_TEXT),
    "message of a request": (_request_message, "message", MAX_TEXT),
    "submission note": (_submission_note, "note", MAX_TEXT),
    "note asking for changes": (_changes_note, "note", MAX_TEXT),
    "decline reason": (_decline_reason, "reason", MAX_TEXT),
}


def test_limits_are_those_of_the_product_rules() -> None:
    assert (MAX_TITLE, MAX_TEXT, MAX_MILESTONES) == (200, 2000, 50)
    assert Policy().max_amount_major == 10_000_000


@pytest.mark.parametrize("case", list(TEXTS))
def test_text_exactly_at_its_limit_is_accepted(session: Session, case: str) -> None:
    build, _, limit = TEXTS[case]
    call, kwargs = build(session, "x" * limit)

    outcome = call(session, **kwargs)

    assert not outcome.already_done


@pytest.mark.parametrize("case", list(TEXTS))
def test_text_one_over_its_limit_is_refused_and_nothing_stored(session: Session, case: str) -> None:
    build, what, limit = TEXTS[case]
    call, kwargs = build(session, "x" * (limit + 1))

    message = refuse(session, LimitExceeded, call, **kwargs)

    assert message == f"The {what} is {limit + 1:,} characters long; the limit is {limit:,}."


def test_surrounding_spaces_do_not_count_towards_a_limit(session: Session) -> None:
    contract_id = new_contract(session)

    change(session, contract_id, NewMilestone(f"  {'x' * MAX_TITLE}  ", "100", DUE))

    assert milestone(session, contract_id, 1)["title"] == "x" * MAX_TITLE


@pytest.mark.parametrize("title", ["", "   "])
def test_milestone_title_is_required(session: Session, title: str) -> None:
    contract_id = new_contract(session)

    message = refuse(
        session,
        InvalidInput,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone(title, "100", DUE)],
        now=NOW,
    )
    assert message == "The title can't be empty."


# --- milestone count ---------------------------------------------------------------


def fifty(prefix: str = "M") -> list[NewMilestone]:
    return [NewMilestone(f"{prefix}{i}", "1", DUE) for i in range(1, MAX_MILESTONES + 1)]


def test_fifty_milestones_are_accepted(session: Session) -> None:
    contract_id = new_contract(session)

    change(session, contract_id, *fifty())

    assert len(exported(session, contract_id)["milestones"]) == 50


def test_fifty_first_milestone_is_refused(session: Session) -> None:
    contract_id = new_contract(session)
    change(session, contract_id, *fifty())

    message = refuse(
        session,
        LimitExceeded,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[NewMilestone("51", "1", DUE)],
        now=NOW,
    )
    assert message == "A contract can have at most 50 milestones."


def test_fifty_one_milestones_at_once_are_refused_entirely(session: Session) -> None:
    contract_id = new_contract(session)

    refuse(
        session,
        LimitExceeded,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[*fifty(), NewMilestone("51", "1", DUE)],
        now=NOW,
    )

    assert exported(session, contract_id)["milestones"] == []


def test_deleted_milestones_do_not_count_towards_the_limit(session: Session) -> None:
    contract_id = new_contract(session)
    change(session, contract_id, *fifty())
    change(session, contract_id, MilestoneDeletion(7))

    outcome = change(session, contract_id, NewMilestone("Replacement", "1", DUE))

    assert outcome.milestone_number == 51


def test_a_request_that_would_exceed_fifty_milestones_is_refused(session: Session) -> None:
    contract_id = active_contract(session)
    change(session, contract_id, *fifty()[:47])

    message = refuse(
        session,
        LimitExceeded,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[NewMilestone("50", "1", DUE), NewMilestone("51", "1", DUE)],
        now=NOW,
    )
    assert message == "A contract can have at most 50 milestones."


# --- amounts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "typed", "minor"),
    [
        ("USD", "10,000,000", 1_000_000_000),
        ("USD", "$10000000.00", 1_000_000_000),
        ("JPY", "10000000", 10_000_000),
        ("KWD", "10000000.000", 10_000_000_000),
    ],
)
def test_amount_up_to_max_amount_is_accepted(
    session: Session, currency: str, typed: str, minor: int
) -> None:
    contract_id = new_contract(session, currency=currency)

    change(session, contract_id, NewMilestone("Big", typed, DUE))

    assert milestone(session, contract_id, 1)["amount_minor"] == minor


@pytest.mark.parametrize("typed", ["10000000.01", "10,000,001", "99999999999"])
def test_amount_over_max_amount_is_refused(session: Session, typed: str) -> None:
    contract_id = new_contract(session)

    message = refuse(
        session,
        InvalidAmount,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("Big", typed, DUE)],
        now=NOW,
    )
    assert message == "That is too large: the largest amount is 10,000,000 USD."


def test_max_amount_comes_from_the_policy(session: Session) -> None:
    contract_id = new_contract(session)
    policy = Policy(max_amount_major=500)

    change(session, contract_id, NewMilestone("Fits", "500", DUE), policy=policy)
    message = refuse(
        session,
        InvalidAmount,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("Too big", "500.01", DUE)],
        now=NOW,
        policy=policy,
    )
    assert message == "That is too large: the largest amount is 500 USD."


def test_max_amount_applies_to_a_proposed_increase(session: Session) -> None:
    contract_id = funded_contract(session)

    refuse(
        session,
        InvalidAmount,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(1, amount="10000000.01")],
        now=NOW,
    )


@pytest.mark.parametrize(
    ("currency", "typed", "reason"),
    [
        ("USD", "-5", "An amount can't be negative."),
        ("USD", "0", "The amount must be more than zero."),
        ("USD", "0.00", "The amount must be more than zero."),
        ("USD", "abc", "That is not a number; enter an amount such as 1500 or $1,500.00."),
        ("USD", "", "The amount is empty; enter a number such as 1500 or $1,500.00."),
        ("USD", "1.234", "USD amounts have at most 2 decimals, so 1.234 can't be used."),
        ("JPY", "1500.5", "JPY has no minor unit, so 1500.5 can't be used; enter a whole number."),
        ("KWD", "1.2345", "KWD amounts have at most 3 decimals, so 1.2345 can't be used."),
        ("USD", "1e3", "Write the amount in full, without exponent notation such as 1e3."),
        ("USD", "1500 EUR", "That amount is in EUR but this contract is in USD; enter it in USD."),
        (
            "USD",
            "1,50",
            "Commas can only separate groups of three digits, as in 1,500,000; use a dot "
            "for decimals, as in 1500.50.",
        ),
    ],
)
def test_bad_amount_is_refused_with_its_reason(
    session: Session, currency: str, typed: str, reason: str
) -> None:
    contract_id = new_contract(session, currency=currency)

    message = refuse(
        session,
        InvalidAmount,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("Design", typed, DUE)],
        now=NOW,
    )
    assert message == reason


@pytest.mark.parametrize("typed", ["-1", "0", "1.001"])
def test_bad_amount_in_an_edit_or_request_is_refused(session: Session, typed: str) -> None:
    contract_id = active_contract(session)

    refuse(
        session,
        InvalidAmount,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(1, amount=typed)],
        now=NOW,
    )
    refuse(
        session,
        InvalidAmount,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, amount=typed)],
        now=NOW,
    )


# --- due dates -------------------------------------------------------------------


@pytest.mark.parametrize(
    "due",
    [
        pytest.param(TODAY, id="today"),
        pytest.param(TODAY - timedelta(days=1), id="yesterday-in-UTC-is-today-somewhere"),
        pytest.param(TODAY + timedelta(days=365), id="next-year"),
    ],
)
def test_due_date_today_or_later_is_accepted(session: Session, due: date) -> None:
    contract_id = new_contract(session)

    change(session, contract_id, NewMilestone("Design", "100", due))

    assert milestone(session, contract_id, 1)["due_date"] == due.isoformat()


@pytest.mark.parametrize("days_ago", [2, 30, 3650])
def test_past_due_date_is_refused(session: Session, days_ago: int) -> None:
    contract_id = new_contract(session)
    due = TODAY - timedelta(days=days_ago)

    message = refuse(
        session,
        InvalidInput,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("Design", "100", due)],
        now=NOW,
    )
    example = (TODAY + timedelta(days=14)).isoformat()
    assert message == (
        f"The due date {due.isoformat()} is in the past. Give a day from today on, "
        f"such as {example}."
    )


def test_past_due_date_is_refused_in_edits_and_requests(session: Session) -> None:
    contract_id = active_contract(session)
    past = TODAY - timedelta(days=2)

    refuse(
        session,
        InvalidInput,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[MilestoneEdit(1, due_date=past)],
        now=NOW,
    )
    refuse(
        session,
        InvalidInput,
        services.propose_changes,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, due_date=past)],
        now=NOW,
    )


def test_absurdly_distant_due_date_is_refused(session: Session) -> None:
    contract_id = new_contract(session)

    message = refuse(
        session,
        InvalidInput,
        services.change_milestones,
        contract_id=contract_id,
        actor_id=CLIENT,
        changes=[NewMilestone("Design", "100", date(2100, 1, 1))],
        now=NOW,
    )
    assert message == (
        "The due date 2100-01-01 is too far in the future: the latest due date is "
        f"{TODAY.year + 20}-12-31. Give a nearer day, such as "
        f"{(TODAY + timedelta(days=14)).isoformat()}."
    )


def test_a_past_due_date_already_stored_does_not_block_other_changes(session: Session) -> None:
    contract_id = active_contract(session)
    outcome = services.propose_changes(
        session,
        contract_id=contract_id,
        actor_id=FREELANCER,
        changes=[MilestoneEdit(2, title="Later")],
        now=NOW,
    )

    services.accept_request(
        session, actor_id=CLIENT, now=NOW + timedelta(days=60), request_id=outcome.request_id
    )

    assert request(session, contract_id, 1)["status"] == "accepted"
