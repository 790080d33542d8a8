"""What people see with `PAYMENTS=stripe` (`record_only=False`): a milestone's payment
through Stripe on the card and App Home, the pay and payout links, and none of the
words that say the bot only keeps the record — which stay, unchanged, in ledger mode."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.orm import Session

from domain import snapshot
from domain.ledger import Escrow
from domain.model import ContractStatus, EventKind, MilestoneStatus, PaymentState
from domain.payments import FUNDED_NOTE, RECORD_ONLY_NOTE, REFUNDED_NOTE, RELEASED_NOTE
from domain.policy import Policy
from domain.services import fund_milestone
from domain.services.payments import payment_failed
from domain.text import said
from handlers.blocks import (
    build_announcement,
    build_contract_card,
    build_help,
    build_home,
    build_status,
    build_work_card,
)
from handlers.blocks.paying import (
    NO_PUBLIC_URL,
    PAY_LABEL,
    PAYMENT_FAILED,
    PAYMENT_PENDING,
    TOP_UP_PENDING,
    build_pay_link,
    build_payouts,
)
from handlers.ids import Action
from tests import factories as f
from tests.blocks.support import (
    CLIENT,
    FREELANCER,
    NOW,
    all_text,
    buttons,
    check_message,
    check_view,
    contract,
    event,
    milestone,
    snap,
)

LEDGER_WORDS = ("holds no money", "yourselves", "Recorded as", RECORD_ONLY_NOTE)


def active(
    payments: dict[int, PaymentState] | None = None, **owed: PaymentState
) -> snapshot.ContractSnapshot:
    c = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1), milestone(2)])
    shown = snap(c)
    return dataclasses.replace(
        shown,
        payments=payments or {},
        top_ups_owed={int(k.removeprefix("m")): v for k, v in owed.items()},
    )


def no_ledger_words(text: str) -> None:
    for words in LEDGER_WORDS:
        assert words not in text, words


# --- the contract card ----------------------------------------------------------------


def test_a_milestone_whose_payment_is_pending_says_payment_pending_on_the_card() -> None:
    card = check_message(
        build_contract_card(active({101: PaymentState.PENDING}), now=NOW, record_only=False)
    )

    text = all_text(card)
    [line] = [t for t in text.splitlines() if "Milestone 1" in t]
    assert PAYMENT_PENDING in line
    assert "payment pending" in text.split("*Next:*")[1]  # who pays, and that it waits
    no_ledger_words(text)


def test_a_failed_payment_says_to_fund_again_for_a_new_link() -> None:
    card = check_message(
        build_contract_card(active({101: PaymentState.FAILED}), now=NOW, record_only=False)
    )

    assert "payment failed — fund again for a new link" in all_text(card)
    assert PAYMENT_FAILED in all_text(card)
    assert "Fund milestone 1" in [b["text"]["text"][:16] for b in buttons(card)][0]


def test_an_owed_top_up_says_top_up_payment_pending() -> None:
    shown = active(m101=PaymentState.PENDING)

    assert TOP_UP_PENDING in all_text(
        check_message(build_contract_card(shown, now=NOW, record_only=False))
    )


@pytest.mark.parametrize("state", [PaymentState.PAID, PaymentState.RETURNED, None])
def test_a_paid_or_returned_payment_adds_nothing_to_the_line(state: PaymentState | None) -> None:
    payments = {101: state} if state is not None else {}
    text = all_text(check_message(build_contract_card(active(payments), now=NOW)))

    assert PAYMENT_PENDING not in text and "payment failed" not in text


def test_the_card_with_stripe_has_no_record_only_words_even_in_its_confirms() -> None:
    card = check_message(build_contract_card(active(), now=NOW, record_only=False))

    text = all_text(card)
    no_ledger_words(text)
    [fund] = [b for b in buttons(card) if b["action_id"] == Action.FUND.value]
    assert "link to pay" in fund["confirm"]["text"]["text"]
    assert "Stripe" in text


def test_the_card_in_ledger_mode_still_says_the_bot_keeps_the_record_only() -> None:
    card = check_message(build_contract_card(active(), now=NOW))

    text = all_text(card)
    assert RECORD_ONLY_NOTE in text
    [fund] = [b for b in buttons(card) if b["action_id"] == Action.FUND.value]
    assert "holds no money" in fund["confirm"]["text"]["text"]


def test_a_negotiating_card_with_stripe_drops_the_note_too() -> None:
    c = contract(milestones=[milestone(1)])
    no_ledger_words(
        all_text(check_message(build_contract_card(snap(c), now=NOW, record_only=False)))
    )
    assert RECORD_ONLY_NOTE in all_text(check_message(build_contract_card(snap(c), now=NOW)))


def test_status_follows_the_card() -> None:
    shown = active({101: PaymentState.PENDING})

    text = all_text(check_message(build_status(shown, now=NOW, viewer=CLIENT, record_only=False)))

    assert PAYMENT_PENDING in text and "link I sent you" in text
    no_ledger_words(text)


# --- App Home, the work card, announcements, help -------------------------------------


def test_app_home_shows_the_pending_payment_and_no_record_only_words() -> None:
    shown = active({101: PaymentState.PENDING})

    with_stripe = all_text(
        check_view(build_home(CLIENT, [shown], [], now=NOW, record_only=False))["blocks"]
    )
    ledger = all_text(check_view(build_home(CLIENT, [shown], [], now=NOW))["blocks"])

    assert f"milestone 1: :hourglass_flowing_sand: {PAYMENT_PENDING}" in with_stripe
    no_ledger_words(with_stripe)
    assert "the bot holds no money" in ledger


def test_a_paid_work_card_and_its_announcement_drop_the_record_only_note() -> None:
    paid = milestone(
        1,
        status=MilestoneStatus.RELEASED,
        submitted_at=NOW,
        submitted_by=FREELANCER,
        released_at=NOW,
        released_by=CLIENT,
    )
    c = contract(status=ContractStatus.ACTIVE, milestones=[paid])
    released = event(EventKind.MILESTONE_RELEASED, milestone_number=1, amount_minor=150_000)
    funded = event(EventKind.MILESTONE_FUNDED, milestone_number=1, amount_minor=150_000)

    for record_only in (False, True):
        work = all_text(check_message(build_work_card(c, paid, record_only=record_only)))
        said_paid = build_announcement(c, released, record_only=record_only)
        said_funded = build_announcement(c, funded, record_only=record_only)
        assert said_paid is not None and said_funded is not None
        assert (RELEASED_NOTE in work) is record_only
        assert (RELEASED_NOTE in said_paid.text) is record_only
        assert (FUNDED_NOTE in said_funded.text) is record_only
        assert REFUNDED_NOTE not in work


def test_help_with_stripe_says_fund_gives_a_link_to_pay() -> None:
    with_stripe = all_text(check_message(build_help(record_only=False)))
    ledger = all_text(check_message(build_help()))

    assert "gives you a link to pay" in with_stripe and "`/milestone payouts`" in with_stripe
    no_ledger_words(with_stripe)
    assert RECORD_ONLY_NOTE in ledger and "pay it yourselves" in ledger
    assert "/milestone fund" in with_stripe and "/milestone fund" in ledger


# --- the links ------------------------------------------------------------------------


def test_the_pay_link_is_a_url_button_to_the_bots_own_route() -> None:
    message = build_pay_link(
        said("Pay $1,500.00 for milestone 1 (Design)."), public_url="https://bot.test/", token="tok"
    )

    blocks = check_message(message)
    [pay] = buttons(blocks)
    assert pay == {
        "type": "button",
        "text": {"type": "plain_text", "text": PAY_LABEL, "emoji": True},
        "action_id": Action.PAY_LINK.value,
        "url": "https://bot.test/pay/tok",
        "style": "primary",
    }
    assert "Pay $1,500.00 for milestone 1" in message.text


def test_without_a_public_url_the_pay_answer_names_the_missing_setting() -> None:
    message = build_pay_link("Pay for milestone 1.", public_url=None, token="tok")

    blocks = check_message(message)
    assert buttons(blocks) == [] and NO_PUBLIC_URL in message.text and "tok" not in str(blocks)


@pytest.mark.parametrize(
    ("linked", "ready", "state", "label"),
    [
        (False, False, "No payout account is linked yet", "Set up payouts"),
        (True, False, "onboarding is not finished", "Finish setting up payouts"),
        (True, True, "ready to be paid", "Update payout details"),
    ],
)
def test_payouts_says_the_accounts_state_with_its_link(
    linked: bool, ready: bool, state: str, label: str
) -> None:
    message = build_payouts(linked=linked, ready=ready, public_url="https://bot.test", token="t1")

    blocks = check_message(message)
    assert state in message.text
    [link] = buttons(blocks)
    assert (link["text"]["text"], link["url"], link["action_id"]) == (
        label,
        "https://bot.test/payouts/t1",
        Action.PAYOUTS_LINK.value,
    )


# --- from the database: the snapshot reads each milestone's payment ---------------------


def test_the_snapshot_carries_a_pending_then_failed_payment_to_the_card(
    sqlite_session: Session,
) -> None:
    session = sqlite_session
    contract_id = f.active_contract(session)
    stripe = Policy(pay_through_provider=True)
    asked = fund_milestone(
        session, contract_id=contract_id, actor_id=CLIENT, now=NOW, policy=stripe
    )
    assert asked.pay_token is not None

    with session.begin():
        pending = snapshot.snapshot(session, contract_id)
    [first, _] = pending.contract.milestones
    assert pending.payments == {first.id: PaymentState.PENDING} and not pending.top_ups_owed
    assert pending.escrow == Escrow()
    card = all_text(check_message(build_contract_card(pending, now=NOW, record_only=False)))
    assert PAYMENT_PENDING in card
    session.close()

    payment_failed(
        session,
        webhook_id="evt_1",
        webhook_type="payment_intent.payment_failed",
        ledger_key=f"fund:{first.id}",
        payment_intent=None,
        reason="card declined",
        now=NOW,
        policy=stripe,
    )
    with session.begin():
        [failed] = snapshot.snapshots(session, [snapshot.snapshot(session, contract_id).contract])
    assert failed.payments == {first.id: PaymentState.FAILED}
    assert PAYMENT_FAILED in all_text(
        check_message(build_contract_card(failed, now=NOW, record_only=False))
    )
