"""What partial releases, bonuses and more time to review look like: the work card,
the contract card's lines, announcements and history lines (no database)."""

from __future__ import annotations

from typing import Any

from domain.ledger import Escrow
from domain.model import Contract, ContractStatus, Milestone, MilestoneStatus
from handlers.blocks import build_announcement, build_contract_card, build_work_card
from handlers.blocks.describe import event_text
from handlers.ids import Action
from handlers.payloads import MilestoneRef

from .support import (
    CLIENT,
    FREELANCER,
    MANAGER,
    NOW,
    all_text,
    buttons,
    check_message,
    contract,
    event,
    labels,
    later,
    milestone,
    snap,
)

RELEASE_AT = later(days=14)


def _submitted(*, agency: bool = False, **extra: Any) -> tuple[Contract, Milestone]:
    m = milestone(
        1,
        title="Design",
        status=MilestoneStatus.SUBMITTED,
        submitted_at=NOW,
        submitted_by=FREELANCER,
        submission_count=1,
        auto_release_at=RELEASE_AT,
        **extra,
    )
    return contract(status=ContractStatus.ACTIVE, agency=agency, milestones=[m]), m


def test_the_work_card_shows_what_was_paid_early_and_approval_releases_the_rest() -> None:
    c, m = _submitted(released_early_minor=50_000)
    blocks = check_message(build_work_card(c, m))
    text = all_text(blocks)
    assert "$1,500.00 · $500.00 paid early, $1,000.00 held" in text
    [approve] = [b for b in buttons(blocks) if b["action_id"] == Action.APPROVE]
    assert "$1,000.00" in approve["confirm"]["text"]["text"]


def test_an_ask_for_more_time_offers_the_provider_give_and_keep_buttons() -> None:
    c, m = _submitted(agency=True, extension_asked_days=7, extension_asked_at=later(hours=2))
    blocks = check_message(build_work_card(c, m))
    shown = labels(blocks)
    assert shown[0] == "Approve & release"
    assert shown[-2:] == ["Give more time (+7 days)", "Keep the date"]
    ref = MilestoneRef(contract_id=c.id, milestone_id=m.id).dump()
    answers = [b for b in buttons(blocks) if b["action_id"] in (Action.GIVE_MORE_TIME,)]
    assert [b["value"] for b in answers] == [ref]
    text = all_text(blocks)
    assert f"<@{CLIENT}> asks for 7 more days" in text and f"<@{MANAGER}>" in text
    moved = int(later(days=21).timestamp())
    assert f"<!date^{moved}^" in text


def test_no_ask_no_more_time_buttons_and_a_reviewed_milestone_shows_none() -> None:
    c, m = _submitted()
    shown = labels(check_message(build_work_card(c, m)))
    assert "Approve & release" in shown and "Keep the date" not in shown
    released = milestone(
        1,
        status=MilestoneStatus.RELEASED,
        submitted_at=NOW,
        submission_count=1,
        released_at=later(days=1),
        released_by=CLIENT,
        extension_asked_days=7,
    )
    c = contract(status=ContractStatus.ACTIVE, milestones=[released])
    assert labels(check_message(build_work_card(c, released))) == []


def test_the_contract_card_shows_partial_releases_and_bonuses() -> None:
    m = milestone(1, status=MilestoneStatus.FUNDED, funded_at=NOW, released_early_minor=25_000)
    c = contract(status=ContractStatus.ACTIVE, milestones=[m])
    escrow = Escrow(funded_minor=150_000, released_minor=25_000, bonus_minor=10_000)
    text = all_text(check_message(build_contract_card(snap(c, escrow=escrow), now=NOW)))
    assert "$250.00 paid early, $1,250.00 held" in text
    assert "Bonuses (outside escrow)" in text and "$100.00" in text
    assert "*In escrow*\n$1,250.00" in text


def _announced(kind: str, **kwargs: Any) -> str:
    c = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1, title="Design")])
    message = build_announcement(c, event(kind, **kwargs))
    assert message is not None
    return all_text(check_message(message))


def test_partial_release_and_bonus_are_announced_with_the_note_escaped() -> None:
    line = _announced(
        "milestone_partly_released",
        milestone_number=1,
        amount_minor=50_000,
        held_minor=100_000,
    )
    assert "released $500.00 of milestone 1 *Design* early; $1,000.00 stays in escrow" in line
    bonus = _announced("bonus_paid", amount_minor=20_000, note="Thanks <!here> & *more*")
    assert f"paid <@{FREELANCER}> a bonus of $200.00, outside escrow." in bonus
    assert "<!here>" not in bonus and "&lt;!here&gt;" in bonus


def test_asks_for_time_and_their_answers_are_announced_with_the_date() -> None:
    asked = _announced("review_time_asked", milestone_number=1, days=7)
    assert "asked for 7 more days to review milestone 1" in asked
    assert f"<@{FREELANCER}> can give them" in asked
    moved = later(days=21)
    given = _announced(
        "review_extended",
        actor=FREELANCER,
        milestone_number=1,
        days=7,
        auto_release_at=moved.isoformat(),
    )
    assert "gave 7 more days to review milestone 1" in given
    assert f"<!date^{int(moved.timestamp())}^" in given
    kept = _announced(
        "review_time_declined",
        actor=FREELANCER,
        milestone_number=1,
        days=7,
        auto_release_at=RELEASE_AT.isoformat(),
    )
    assert "kept the review date of milestone 1" in kept and "instead of giving 7 more days" in kept


def test_history_lines_survive_missing_figures() -> None:
    c = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1)])
    for kind in ("review_extended", "review_time_asked", "bonus_paid"):
        assert event_text(c, event(kind, milestone_number=1), detailed=True)


def test_approved_work_after_a_partial_release_says_what_was_paid_when() -> None:
    m = milestone(
        1,
        status=MilestoneStatus.RELEASED,
        submitted_at=NOW,
        submission_count=1,
        released_at=later(days=1),
        released_by=CLIENT,
        released_early_minor=50_000,
    )
    c = contract(status=ContractStatus.ACTIVE, milestones=[m])
    text = all_text(check_message(build_work_card(c, m)))
    assert "$1,000.00 released ($500.00 paid early, $1,500.00 in all)." in text
