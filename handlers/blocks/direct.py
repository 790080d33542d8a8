"""Direct messages from the app: something now waits for the person, a reminder, and
the weekday-morning digest of everything that waits for them.

A direct message can't act on the contract by itself (commands work in the contract's
channel), so every line says where the contract lives and what to do there.
"""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from domain.model import ChangeRequest, Contract, Milestone, Notify, Reminder, ReminderKind
from domain.waiting import WaitingItem, WaitingKind
from handlers.blocks.describe import contract_ref, contract_title, milestone_name, request_summary
from handlers.blocks.format import instant, money, pack, plural, user
from handlers.blocks.kit import context, section
from handlers.blocks.message import Message

DIGEST_ITEMS = 40  # at most this many lines (Slack allows 50 blocks a message)


def where(contract: Contract) -> str:
    """E.g. "contract 12 · *Website redesign* in <#C123>"."""
    return f"{contract_ref(contract)} in <#{contract.channel_id}>"


def item_text(item: WaitingItem) -> str:
    """One waiting item as a line for a direct message or the digest."""
    contract, milestone, request = item.contract, item.milestone, item.request
    if item.kind == WaitingKind.ANSWER_REQUEST and request is not None:
        summary = request_summary(request, limit=200)
        return (
            f":inbox_tray: Change request #{request.number} from {user(request.proposed_by)} "
            f"waits for your decision ({summary}): *Accept* or *Decline* it on its card, "
            f"or `/milestone accept {request.number}` there."
        )
    if item.kind == WaitingKind.REVIEW and milestone is not None:
        release = (
            f" Unless you act, *{money(milestone.amount_minor, contract.currency)}* is "
            f"released automatically {instant(item.due_at)}."
            if item.due_at is not None
            else ""
        )
        return (
            f":package: Milestone {milestone_name(milestone)} was delivered and waits for your "
            f"review: *Approve* it or *Request changes*.{release}"
        )
    if item.kind == WaitingKind.FUND and milestone is not None:
        return (
            f":moneybag: Milestone {milestone_name(milestone)} "
            f"({money(milestone.amount_minor, contract.currency)}) is next: fund it so work "
            "can start (*Fund* on the card, or `/milestone fund`)."
        )
    if item.kind == WaitingKind.WORK and milestone is not None:
        return (
            f":hammer_and_wrench: Milestone {milestone_name(milestone)} is funded: deliver it "
            "with `/milestone submit`."
        )
    if item.kind == WaitingKind.ENDING_NOTICE:
        by = f" by {instant(item.due_at)}" if item.due_at is not None else ""
        return (
            ":door: The client ended the contract while escrow is held: *Accept refund* or "
            f"*Dispute* it on the card{by}. If you do neither, the refund happens by itself."
        )
    if item.kind == WaitingKind.EXTENSION_ASK and milestone is not None:
        days = milestone.extension_waiting
        more = f"{plural(days, 'more day')}" if days else "more time"
        return (
            f":hourglass: The client asks for {more} to review milestone "
            f"{milestone_name(milestone)}: *Give more time* on the card, or keep the date."
        )
    if item.kind == WaitingKind.SPLIT_TO_AGREE:
        dispute = item.dispute
        amount = (
            f" ({money(dispute.proposed_to_provider_minor, contract.currency)} to the provider, "
            "the rest back to the client)"
            if dispute is not None and dispute.proposed_to_provider_minor is not None
            else ""
        )
        name = f" of milestone {milestone_name(milestone)}" if milestone is not None else ""
        return (
            f":scales: A split of the dispute{name} waits for your agreement{amount}: "
            "*Agree to split* on the card."
        )
    if item.kind == WaitingKind.AGREE:
        return (
            ":handshake: The terms wait for your agreement: *Agree* on the card, or "
            "`/milestone start`."
        )
    if item.kind == WaitingKind.ADD_MILESTONES:
        return ":memo: The contract has no milestones yet: add one with `/milestone add`."
    return f":bell: Something waits for you ({item.kind.value.replace('_', ' ')})."


def _footer(choice: Notify) -> str:
    if choice == Notify.DIGEST:
        return (
            "Your weekday-morning digest. `/milestone notify both` for a message as things "
            "happen, `/milestone notify channel` for none."
        )
    return (
        "You get these because something needs you. `/milestone notify digest` for one "
        "message each weekday morning instead, `/milestone notify channel` for none."
    )


def build_direct(item: WaitingItem, *, choice: Notify = Notify.BOTH) -> Message:
    """Something now waits for the person (rendered from current state at send time)."""
    text = item_text(item)
    return Message(
        text=f"Waiting for you · {contract_title(item.contract, 60)}",
        blocks=[
            section(text, block_id="direct_item"),
            context(where(item.contract), block_id="direct_where"),
            context(_footer(choice), block_id="direct_footer"),
        ],
    )


def build_direct_reminder(
    contract: Contract,
    reminder: Reminder,
    *,
    request: ChangeRequest | None = None,
    milestone: Milestone | None = None,
    choice: Notify = Notify.BOTH,
) -> Message:
    """A reminder in the person's direct messages."""
    if reminder.kind == ReminderKind.REQUEST and request is not None:
        text = (
            f":bell: Change request #{request.number} from {user(request.proposed_by)} has "
            f"been waiting since {instant(request.proposed_at)}. Accept or decline it on its "
            "card (requests don't expire)."
        )
    elif reminder.kind == ReminderKind.REVIEW and milestone is not None:
        release = milestone.auto_release_at
        text = (
            f":hourglass_flowing_sand: Milestone {milestone_name(milestone)} is waiting for "
            f"your review. Unless you approve it or request changes, "
            f"*{money(milestone.amount_minor, contract.currency)}* will be released "
            f"automatically {instant(release) if release else 'soon'}."
        )
    elif reminder.kind == ReminderKind.DISPUTE and milestone is not None:
        text = (
            f":scales: Milestone {milestone_name(milestone)} is still disputed: its escrow "
            "stays frozen until you agree on a split. Propose one with "
            f"`/milestone settle {milestone.number} <amount-to-provider>`, or agree to the "
            "one on its dispute card."
        )
    elif reminder.kind == ReminderKind.FUND and milestone is not None:
        text = (
            f":moneybag: Milestone {milestone_name(milestone)} "
            f"({money(milestone.amount_minor, contract.currency)}) is next. Fund it when "
            "you're ready so work can start."
        )
    elif milestone is not None:
        text = (
            f":calendar: Milestone {milestone_name(milestone)} is past its due date and still "
            "in progress."
        )
    else:
        text = ":bell: Something in this contract is waiting for you."
    return Message(
        text=f"Reminder · {contract_title(contract, 60)}",
        blocks=[
            section(text, block_id="direct_item"),
            context(where(contract), block_id="direct_where"),
            context(_footer(choice), block_id="direct_footer"),
        ],
    )


def build_digest(items: list[WaitingItem]) -> Message:
    """The weekday-morning list of everything that waits for the person."""
    shown = items[:DIGEST_ITEMS]
    heading = (
        f":sunrise: *Good morning!* {plural(len(items), 'thing')} "
        f"{'waits' if len(items) == 1 else 'wait'} for you today."
    )
    lines = [f"{item_text(item)}\n        _{where(item.contract)}_" for item in shown]
    blocks: list[Block] = [section(heading, block_id="digest_heading")]
    blocks += [
        section(text, block_id=f"digest_{i}")
        for i, text in enumerate(pack(lines, sep="\n\n"), start=1)
    ][:45]
    if len(items) > len(shown):
        more = len(items) - len(shown)
        blocks.append(context(f"…and {more} more: see the app's Home tab."))
    blocks.append(context(_footer(Notify.DIGEST), block_id="direct_footer"))
    return Message(text=f"Good morning: {plural(len(items), 'thing')} wait for you", blocks=blocks)


_MEANING = {
    Notify.CHANNEL: (
        "You hear about what needs you in the contracts' channels only: the cards, and "
        "reminders in their threads that mention you. No direct messages from me."
    ),
    Notify.DM: (
        "I send you a direct message when something needs you (a change request to "
        "answer, work to review, a milestone to fund), and reminders come there too, "
        "instead of in the channel thread."
    ),
    Notify.BOTH: (
        "I send you a direct message when something needs you (a change request to "
        "answer, work to review, a milestone to fund), and reminders come both there and "
        "in the channel thread."
    ),
    Notify.DIGEST: (
        "One direct message at 09:00 on weekdays, in your Slack time zone, listing "
        "everything that waits for you; no message for each item. Reminders still come in "
        "the channel threads."
    ),
}


def build_notify_answer(choice: Notify, *, changed: bool | None) -> Message:
    """The answer to `/milestone notify …`: what they chose (`changed` None: only asked
    what it is) and what it means."""
    name = f"*{choice.value}*" + (" (the default)" if choice == Notify.BOTH else "")
    if changed is None:
        head = f":bell: You get notifications: {name}."
    elif changed:
        head = f":bell: Notifications: {name}."
    else:
        head = f":bell: Notifications: {name} — that was already your choice."
    return Message(
        text=f"Notifications: {choice.value}",
        blocks=[
            section(f"{head} {_MEANING[choice]}", block_id="notice"),
            context("Change it any time: `/milestone notify channel|dm|both|digest`."),
        ],
    )
