"""How money is spoken of, and the answers that carry a pay or payout link.

With `PAYMENTS=ledger` (`record_only=True`, every builder's default) each surface says
that the bot keeps the record only and the parties move the money themselves
(domain.payments: `RECORD_ONLY_NOTE`, `FUNDED_NOTE`, …). With `PAYMENTS=stripe`
(`record_only=False`) money really moves through Stripe, so those words would be false:
they are left out, and the confirms say what a click does with the money instead.

A pay link (`<public_url>/pay/<token>`) and a payout onboarding link
(`<public_url>/payouts/<token>`) are the bot's own routes (bot/server.py), which send
the person on to Stripe; they are shown to that person alone, as URL buttons.
"""

from __future__ import annotations

from slack_sdk.models.blocks import Block, ButtonElement

from domain.model import PaymentState
from domain.text import Said
from handlers.blocks.format import said_mrkdwn
from handlers.blocks.kit import BUTTON_TEXT_LIMIT, actions, context, plain, section
from handlers.blocks.message import Message
from handlers.ids import Action

PAY_BLOCK = "pay_link"
PAY_ACTIONS_BLOCK = "pay_link_actions"
PAYOUTS_BLOCK = "payouts"
PAYOUTS_ACTIONS_BLOCK = "payouts_actions"
PAY_LABEL = "Pay with Stripe"
NO_PUBLIC_URL = (
    "I can't give you a link: the operator has not set PUBLIC_URL, the address where "
    "I can be reached from a browser. Ask them to set it and restart me, then try again."
)

# What a milestone's payment through the provider shows on the card (after its state).
PAYMENT_PENDING = "payment pending"
PAYMENT_FAILED = "payment failed — fund again for a new link"
TOP_UP_PENDING = "top-up payment pending"
TOP_UP_FAILED = "top-up payment failed — fund again for a new link"


def noted(note: str, *, record_only: bool) -> str:
    """`note` (a record-only note of domain.payments) after a space, or nothing when
    money moves through the provider."""
    return f" {note}" if record_only else ""


def pay_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/pay/{token}"


def payouts_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/payouts/{token}"


def link_button(label: str, action_id: str, url: str) -> ButtonElement:
    """A URL button: Slack opens `url`, and still sends the click to the app, which
    acknowledges it and does nothing else (handlers.actions)."""
    return ButtonElement(
        text=plain(label[:BUTTON_TEXT_LIMIT]),
        action_id=str(action_id),
        url=url,
        style="primary",
    )


def build_pay_link(what: Said | str, *, public_url: str | None, token: str) -> Message:
    """The answer to a fund through the provider, for the person who funded alone: what
    the domain said, and the **Pay with Stripe** button to the pay link."""
    body = said_mrkdwn(what).strip()
    if not public_url:
        text = f":warning: {body} {NO_PUBLIC_URL}"
        return Message(text=text, blocks=[section(text, block_id=PAY_BLOCK)])
    text = f":money_with_wings: {body}"
    return Message(
        text=text,
        blocks=[
            section(text, block_id=PAY_BLOCK),
            actions(
                PAY_ACTIONS_BLOCK,
                [link_button(PAY_LABEL, Action.PAY_LINK, pay_url(public_url, token))],
            ),
        ],
    )


def build_payouts(*, linked: bool, ready: bool, public_url: str | None, token: str) -> Message:
    """`/milestone payouts` with `PAYMENTS=stripe`: the person's payout account as Stripe
    has it, with the button to set it up (or update it) through their own link."""
    if ready:
        state = (
            ":white_check_mark: Your payout account is *ready to be paid*: released "
            "milestones go to it through Stripe."
        )
        label = "Update payout details"
    elif linked:
        state = (
            ":hourglass_flowing_sand: Your payout account is linked, but *onboarding is "
            "not finished*: Stripe needs more details before you can be paid. Releases "
            "to you wait until it is done."
        )
        label = "Finish setting up payouts"
    else:
        state = (
            ":bank: *No payout account is linked yet.* Set one up with Stripe to be paid "
            "for released milestones; releases to you wait until it is ready."
        )
        label = "Set up payouts"
    blocks: list[Block] = [section(state, block_id=PAYOUTS_BLOCK)]
    if not public_url:
        blocks.append(context(f":warning: {NO_PUBLIC_URL}"))
    else:
        blocks.append(
            actions(
                PAYOUTS_ACTIONS_BLOCK,
                [link_button(label, Action.PAYOUTS_LINK, payouts_url(public_url, token))],
            )
        )
        blocks.append(context("The link is yours alone; it opens Stripe's secure onboarding."))
    return Message(text=state, blocks=blocks)


def payment_text(fund: PaymentState | None, top_up: PaymentState | None) -> str:
    """A milestone's payment through the provider in a few words ("" when nothing is
    owed): its fund payment pending or failed, or a top-up still to pay."""
    if top_up == PaymentState.PENDING:
        return f":hourglass_flowing_sand: {TOP_UP_PENDING}"
    if top_up == PaymentState.FAILED:
        return f":warning: {TOP_UP_FAILED}"
    if fund == PaymentState.PENDING:
        return f":hourglass_flowing_sand: {PAYMENT_PENDING}"
    if fund == PaymentState.FAILED:
        return f":warning: {PAYMENT_FAILED}"
    return ""


def fund_confirm_text(amount: str, number: int, provider: str, *, record_only: bool) -> str:
    if record_only:
        return (
            f"The bot records {amount} as funded for milestone {number}; it holds no money, "
            f"so pay it yourselves. It is recorded as released to {provider} when you "
            "approve the work, or automatically if a submission gets no answer within the "
            "review period."
        )
    return (
        f"You get a link to pay {amount} for milestone {number} with Stripe; it is funded "
        f"when Stripe confirms the payment. It is released to {provider} when you approve "
        "the work, or automatically if a submission gets no answer within the review period."
    )


def approve_confirm_text(amount: str, provider: str, *, record_only: bool) -> str:
    if record_only:
        return (
            f"This records {amount} as released to {provider}: pay them yourselves. "
            "It can't be undone."
        )
    return f"This releases {amount} to {provider} through Stripe. It can't be undone."


def top_up_confirm_text(amount: str, *, record_only: bool) -> str:
    if record_only:
        return (
            "This request raises the amount of a milestone that is already funded. "
            f"Accepting records {amount} more as funded now: pay it yourselves."
        )
    return (
        "This request raises the amount of a milestone that is already funded. After "
        f"accepting, pay the {amount} top-up with Stripe (`/milestone fund` gives the link)."
    )
