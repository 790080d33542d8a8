"""`PAYMENTS=stripe` at the listeners: funding answers the funder alone with their pay
link, `/milestone payouts` gives the provider side their onboarding link, and nothing
says the bot only keeps the record. The same fakes as tests/handlers/test_listeners.py."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from domain.model import OutboxMessage, PaymentState, PayoutAccount, ProviderPayment
from domain.payments import PAYOUTS_NOTE, RECORD_ONLY_NOTE
from domain.policy import Policy
from handlers import actions, commands
from handlers.blocks.paying import NO_PUBLIC_URL, PAY_LABEL
from handlers.deps import Deps
from handlers.ids import Action
from handlers.payloads import MilestoneRef
from tests import factories as f
from tests.handlers.test_listeners import (
    RESPONSE_URL,
    World,
    first_milestone,
    in_db,
    make_world,
    sessions,  # noqa: F401 - the fixture
)

PUBLIC_URL = "https://bot.example.test"
STRIPE = Policy(pay_through_provider=True)


def with_payments(world: World, *, policy: Policy, public_url: str | None) -> World:
    deps = world.context["deps"]
    assert isinstance(deps, Deps)
    world.context["deps"] = dataclasses.replace(deps, policy=policy, public_url=public_url)
    return world


@pytest.fixture
def stripe(sessions: sessionmaker[Session]) -> World:  # noqa: F811 - the fixture
    return with_payments(make_world(sessions), policy=STRIPE, public_url=PUBLIC_URL)


@pytest.fixture
def ledger(sessions: sessionmaker[Session]) -> World:  # noqa: F811 - the fixture
    return make_world(sessions)


def url_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        element
        for block in message.get("blocks", [])
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("url")
    ]


def fund_payment(world: World) -> ProviderPayment:
    with world.session() as session:
        return session.scalars(select(ProviderPayment)).one()


def fund_button_value(world: World, contract_id: int) -> str:
    milestone = first_milestone(world, contract_id)
    return MilestoneRef(contract_id=contract_id, milestone_id=milestone.id).dump()


def test_a_typed_fund_answers_the_funder_alone_with_their_pay_link(stripe: World) -> None:
    contract_id = in_db(stripe, f.active_contract)
    outbox_before = stripe.outbox_ids()

    stripe.command(f.CLIENT, "fund")

    assert len(stripe.ack.calls) == 1 and stripe.journal.first().who == "ack"
    payment = fund_payment(stripe)
    assert payment.state == PaymentState.PENDING
    [answer] = stripe.respond.calls  # to the person who typed it, through response_url
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    [pay] = url_buttons(answer)
    assert pay["text"]["text"] == PAY_LABEL
    assert pay["url"] == f"{PUBLIC_URL}/pay/{payment.token}"
    assert pay["action_id"] == Action.PAY_LINK.value
    assert "Pay " in answer["text"] and "milestone 1" in answer["text"]
    # Nothing in the channel carries the link: the outbox holds cards, no reply, no token.
    assert stripe.replies() == [] and stripe.slack.calls("chat_postEphemeral") == []
    with stripe.session() as session:
        written = session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(stripe.outbox_ids() - outbox_before))
        ).all()
    assert all(payment.token not in (row.body or "") for row in written)
    assert first_milestone(stripe, contract_id).status == "pending"  # until Stripe confirms


def test_the_fund_button_on_the_card_answers_the_clicker_alone(stripe: World) -> None:
    contract_id = in_db(stripe, f.active_contract)

    stripe.press(Action.FUND, f.CLIENT, fund_button_value(stripe, contract_id))

    payment = fund_payment(stripe)
    [answer] = stripe.respond.calls  # ephemeral, never a replacement of the channel's card
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert [b["url"] for b in url_buttons(answer)] == [f"{PUBLIC_URL}/pay/{payment.token}"]
    assert stripe.slack.calls("views_open") == []
    assert first_milestone(stripe, contract_id).status == "pending"


def test_the_fund_button_in_app_home_shows_the_link_in_a_modal(stripe: World) -> None:
    contract_id = in_db(stripe, f.active_contract)

    stripe.press(Action.FUND, f.CLIENT, fund_button_value(stripe, contract_id), in_home=True)

    payment = fund_payment(stripe)
    [opened] = stripe.slack.calls("views_open")
    assert [b["url"] for b in url_buttons(opened.kwargs["view"])] == [
        f"{PUBLIC_URL}/pay/{payment.token}"
    ]
    assert stripe.respond.calls == []


def test_funding_again_while_the_payment_is_pending_shows_the_same_link(stripe: World) -> None:
    in_db(stripe, f.active_contract)
    stripe.command(f.CLIENT, "fund")
    first = url_buttons(stripe.respond.calls[-1])[0]["url"]

    body = {  # another request (its own trigger id), not a replay of the first
        "command": "/milestone",
        "text": "fund",
        "user_id": f.CLIENT,
        "team_id": f.TEAM,
        "channel_id": f.CHANNEL,
        "trigger_id": "3333.4444.trigger",
        "response_url": RESPONSE_URL,
    }
    stripe.run(commands.handle_milestone_command, body, command=body)

    assert len(stripe.respond.calls) == 2
    assert url_buttons(stripe.respond.calls[-1])[0]["url"] == first


def test_without_a_public_url_the_funder_is_told_the_operator_must_set_it(
    sessions: sessionmaker[Session],  # noqa: F811 - the fixture
) -> None:
    world = with_payments(make_world(sessions), policy=STRIPE, public_url=None)
    in_db(world, f.active_contract)

    world.command(f.CLIENT, "fund")

    [answer] = world.respond.calls
    assert "PUBLIC_URL" in answer["text"] and NO_PUBLIC_URL.split(":")[0] in answer["text"]
    assert url_buttons(answer) == []


def test_a_click_on_a_link_button_is_only_acknowledged(stripe: World) -> None:
    body = {
        "type": "block_actions",
        "user": {"id": f.CLIENT},
        "actions": [{"action_id": Action.PAY_LINK.value, "action_ts": "1.2"}],
        "response_url": RESPONSE_URL,
    }

    stripe.run(actions.open_link, body)

    assert len(stripe.ack.calls) == 1
    assert stripe.respond.calls == [] and stripe.slack.calls() == []


def test_both_link_buttons_have_a_listener() -> None:
    registered: list[str] = []

    class Recorder:
        def action(self, name: str) -> Any:
            registered.append(name)
            return lambda listener: listener

    actions.register(Recorder())  # type: ignore[arg-type]

    assert {Action.PAY_LINK.value, Action.PAYOUTS_LINK.value} <= set(registered)


def test_payouts_with_stripe_gives_the_person_their_onboarding_link(stripe: World) -> None:
    in_db(stripe, f.active_contract)

    stripe.command(f.FREELANCER, "payouts")

    assert stripe.journal.first().who == "ack"
    with stripe.session() as session:
        account = session.scalars(select(PayoutAccount)).one()
    assert account.user_id == f.FREELANCER
    [answer] = stripe.respond.calls
    assert answer["response_type"] == "ephemeral"
    assert "No payout account is linked yet" in answer["text"]
    [link] = url_buttons(answer)
    assert link["text"]["text"] == "Set up payouts"
    assert link["url"] == f"{PUBLIC_URL}/payouts/{account.token}"
    assert link["action_id"] == Action.PAYOUTS_LINK.value
    assert PAYOUTS_NOTE not in str(answer)


def test_payouts_says_when_onboarding_is_unfinished_and_when_it_is_ready(stripe: World) -> None:
    stripe.command(f.FREELANCER, "payouts")
    with stripe.session() as session, session.begin():
        account = session.scalars(select(PayoutAccount)).one()
        account.account_id = "acct_1"

    stripe.command(f.FREELANCER, "payouts")
    unfinished = stripe.respond.calls[-1]
    assert "onboarding is not finished" in unfinished["text"]

    with stripe.session() as session, session.begin():
        session.scalars(select(PayoutAccount)).one().ready = True
    stripe.command(f.FREELANCER, "payouts")
    ready = stripe.respond.calls[-1]
    assert "ready to be paid" in ready["text"]
    [link] = url_buttons(ready)
    assert link["text"]["text"] == "Update payout details"
    with stripe.session() as session:
        assert (
            link["url"]
            == f"{PUBLIC_URL}/payouts/{session.scalars(select(PayoutAccount.token)).one()}"
        )


def test_payouts_in_ledger_mode_still_says_there_is_no_account_to_link(ledger: World) -> None:
    ledger.command(f.FREELANCER, "payouts")

    [answer] = ledger.respond.calls
    assert PAYOUTS_NOTE in answer["text"] and url_buttons(answer) == []
    assert ledger.count(PayoutAccount) == 0


def test_help_with_stripe_says_fund_gives_a_link_and_not_that_money_is_only_recorded(
    stripe: World, ledger: World
) -> None:
    stripe.command(f.CLIENT, "help")
    ledger.command(f.CLIENT, "help")

    with_stripe, recorded = str(stripe.respond.calls[0]), str(ledger.respond.calls[0])
    assert RECORD_ONLY_NOTE not in with_stripe and "holds no money" not in with_stripe
    assert "link to pay" in with_stripe and "/milestone payouts" in with_stripe
    assert RECORD_ONLY_NOTE in recorded and "link to pay" not in recorded


def test_status_with_stripe_shows_the_pending_payment_and_no_record_only_words(
    stripe: World,
) -> None:
    in_db(stripe, f.active_contract)
    stripe.command(f.CLIENT, "fund")

    stripe.command(f.FREELANCER, "status")

    shown = str(stripe.respond.calls[-1])
    assert "payment pending" in shown
    assert RECORD_ONLY_NOTE not in shown and "holds no money" not in shown
