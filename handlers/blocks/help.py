"""`/milestone help` and short ephemeral replies."""

from __future__ import annotations

from datetime import date

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from domain.payments import RECORD_ONLY_NOTE
from domain.text import Said
from handlers.blocks.format import escape, pack, said_mrkdwn, shorten
from handlers.blocks.kit import context, plain, section
from handlers.blocks.message import Message
from handlers.grammar import USAGE, help_text

#: With `PAYMENTS=stripe`, what the guide says about money instead of RECORD_ONLY_NOTE.
STRIPE_NOTE = (
    "Money moves through Stripe: *Fund* gives the client a link to pay, a release pays "
    "the provider side out to the account `/milestone payouts` sets up."
)


def build_help(
    topic: str | None = None, *, today: date | None = None, record_only: bool = True
) -> Message:
    """The command guide; with `topic` (a subcommand), just its usage line first.

    Its example dates are computed from `today` (the reader's; the machine's date when
    not given), so an example is never in the past. `record_only` (`PAYMENTS=ledger`):
    it ends saying the bot keeps the record only; else that money moves through Stripe."""
    blocks: list[Block] = []
    if topic is not None and topic in USAGE:
        blocks.append(section(f"*Usage:* {escape(USAGE[topic])}", block_id="help_usage"))
    # The guide is plain text with `<title>`-style placeholders: escaped, so Slack
    # doesn't read them as links.
    guide = help_text(today or date.today(), record_only=record_only)
    paragraphs = [escape(p.strip()) for p in guide.split("\n\n") if p.strip()]
    blocks += [
        section(text, block_id=f"help_{i}")
        for i, text in enumerate(pack(paragraphs, sep="\n\n", limit=1500))
    ]
    blocks.append(
        context(
            "Buttons on the cards do the same: *Agree to terms*, *Fund*, *Approve & release*, "
            "*Request changes*, *Accept* / *Decline* / *Suggest changes* / *Withdraw* / "
            "*Revise* on change requests; *Dispute*, *Accept refund*, *Agree to split* and "
            "*End contract* when a contract ends or is disputed."
        )
    )
    blocks.append(
        context(
            f":receipt: {RECORD_ONLY_NOTE}" if record_only else f":money_with_wings: {STRIPE_NOTE}",
            block_id="help_payments",
        )
    )
    return Message(
        text="milestone-bot: agree on milestones, fund them one at a time, get paid on approval.",
        blocks=blocks,
    )


def build_notice(text: Said | str, *, emoji: str = "") -> Message:
    """A short ephemeral reply: one section with what the domain said (an outcome or a
    refusal), or a bot-made sentence, rendered by `said_mrkdwn`: every word escaped,
    people as mentions, commands as code."""
    body = said_mrkdwn(text).strip() or "Done."
    shown = f"{emoji} {body}" if emoji else body
    return Message(text=shown, blocks=[section(shown, block_id="notice")])


def build_error(text: Said | str, *, reference: str | None = None) -> Message:
    """A refusal or an apology; `reference` (a correlation id) is shown small below."""
    body = said_mrkdwn(text).strip() or "Something went wrong."
    blocks: list[Block] = [section(f":warning: {body}", block_id="notice")]
    if reference:
        blocks.append(context(f"Reference: `{escape(reference)}`"))
    return Message(text=body, blocks=blocks)


def build_notice_modal(text: Said | str | Message, *, title: str = "milestone-bot") -> View:
    """A notice as a small modal, for clicks that have no channel to answer in (App Home);
    rendered like `build_notice` (a built message: its blocks)."""
    shown = (
        text.blocks
        if isinstance(text, Message)
        else [section(shorten(said_mrkdwn(text).strip() or "Done.", 3000), block_id="notice")]
    )
    return View(type="modal", title=plain(title[:24]), close=plain("OK"), blocks=shown)
