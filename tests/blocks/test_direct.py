"""Direct messages and the morning digest: what they say, escaped, within Slack's limits."""

from __future__ import annotations

from datetime import timedelta

from domain.model import ChangeKind, ContractStatus, MilestoneStatus, Notify
from domain.waiting import WaitingItem, WaitingKind
from handlers.blocks.direct import DIGEST_ITEMS, build_digest, build_direct
from tests.blocks.support import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    NOW,
    all_text,
    change,
    check_message,
    contract,
    milestone,
    request,
)


def review_item(title: str = "Website redesign") -> WaitingItem:
    work = milestone(
        1, status=MilestoneStatus.SUBMITTED, title="Design", auto_release_at=NOW + timedelta(14)
    )
    c = contract(status=ContractStatus.ACTIVE, milestones=[work], title=title)
    return WaitingItem(
        WaitingKind.REVIEW, c, (CLIENT,), milestone=work, due_at=work.auto_release_at
    )


def test_a_request_dm_names_the_proposer_the_contract_and_where_to_answer() -> None:
    c = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1)])
    pending = request(1, changes=[change(ChangeKind.EDIT, 1, {"amount_minor": 200_000})])
    item = WaitingItem(WaitingKind.ANSWER_REQUEST, c, (CLIENT,), request=pending)

    text = all_text(check_message(build_direct(item)))

    assert "Change request #1" in text and f"<@{FREELANCER}>" in text
    assert f"<#{CHANNEL}>" in text and "Website redesign" in text
    assert "/milestone notify digest" in text  # how to have fewer


def test_a_review_dm_says_how_much_is_released_automatically_and_when() -> None:
    text = all_text(check_message(build_direct(review_item())))
    assert "$1,500.00" in text and "<!date^" in text and "*1 · Design*" in text


def test_a_typed_title_cannot_ping_anyone_from_a_dm() -> None:
    message = build_direct(review_item(title="<!channel> pay now"))
    assert "<!channel>" not in all_text(check_message(message)) + message.text


def test_the_digest_lists_every_item_and_stays_within_the_block_limit() -> None:
    items = [review_item(f"Contract {i}") for i in range(DIGEST_ITEMS + 15)]
    blocks = check_message(build_digest(items))
    text = all_text(blocks)
    assert f"{DIGEST_ITEMS + 15} things" in text and "15 more" in text
    assert len(blocks) <= 50


def test_the_digest_footer_offers_the_other_choices() -> None:
    text = all_text(check_message(build_digest([review_item()])))
    assert "1 thing waits" in text and "/milestone notify both" in text
    assert Notify.DIGEST.value in text
