"""Reminders: a reply in the thread of the card it concerns, mentioning who owes it."""

from __future__ import annotations

from domain.model import ChangeRequest, Contract, Milestone, Reminder, ReminderKind
from handlers.blocks.describe import milestone_name
from handlers.blocks.format import due, escape, instant, money, user
from handlers.blocks.kit import section
from handlers.blocks.message import Message


def build_reminder(
    contract: Contract,
    reminder: Reminder,
    *,
    request: ChangeRequest | None = None,
    milestone: Milestone | None = None,
) -> Message:
    who = user(reminder.recipient_id)
    if reminder.kind == ReminderKind.REQUEST and request is not None:
        text = (
            f":bell: {who} change request #{request.number} from {user(request.proposed_by)} "
            f"has been waiting since {instant(request.proposed_at)}. Accept or decline it "
            "on the card above (requests don't expire)."
        )
    elif reminder.kind == ReminderKind.REVIEW and milestone is not None:
        release = milestone.auto_release_at
        when = instant(release) if release else "soon"
        text = (
            f":hourglass_flowing_sand: {who} milestone {milestone_name(milestone)} is waiting "
            f"for your review. Unless you approve it or request changes, "
            f"*{money(milestone.amount_minor, contract.currency)}* will be released "
            f"automatically {when}."
        )
    elif reminder.kind == ReminderKind.DISPUTE and milestone is not None:
        text = (
            f":scales: {who} milestone {milestone_name(milestone)} is still disputed: its "
            "escrow stays frozen until you agree on a split. Propose one with "
            f"`/milestone settle {milestone.number} <amount-to-provider>`, or agree to the "
            "one above."
        )
    elif reminder.kind == ReminderKind.FUND and milestone is not None:
        text = (
            f":moneybag: {who} milestone {milestone_name(milestone)} "
            f"({money(milestone.amount_minor, contract.currency)}) is next. Fund it when "
            "you're ready so work can start: `/milestone fund` or the *Fund* button."
        )
    elif milestone is not None:
        text = (
            f":calendar: {who} milestone {milestone_name(milestone)} was due "
            f"{due(milestone.due_date)} and is still in progress."
        )
    else:
        text = f":bell: {who} something in contract {contract.id} is waiting for you."
    title = escape(contract.title)
    return Message(text=f"Reminder · {title}", blocks=[section(text)])
