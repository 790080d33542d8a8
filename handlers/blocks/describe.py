"""Words for the domain's things, shared by cards, announcements, history and Home.

Everything returns mrkdwn with user-typed parts escaped (`clip`/`escape`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from domain.model import (
    Change,
    ChangeKind,
    ChangeRequest,
    Contract,
    ContractStatus,
    Event,
    EventKind,
    Milestone,
    MilestoneStatus,
    PaymentState,
    RequestStatus,
    Role,
)
from domain.snapshot import ContractSnapshot, Next
from handlers.blocks.format import (
    actor,
    clip,
    due,
    due_iso,
    escape,
    instant,
    join_words,
    money,
    plural,
    quote,
    shorten,
    user,
    users,
)

DAY = "{date_short_pretty}"  # date-token format for "paid" / "refunded" on a card
TITLE_LIMIT = 100  # a milestone or contract title inside a line
SHORT_TITLE_LIMIT = 60

CONTRACT_BADGE: dict[ContractStatus, str] = {
    ContractStatus.NEGOTIATING: ":memo: Negotiating",
    ContractStatus.ACTIVE: ":large_green_circle: Active",
    ContractStatus.ENDING: ":hourglass_flowing_sand: Ending",
    ContractStatus.CLOSED: ":lock: Closed",
}

MILESTONE_EMOJI: dict[MilestoneStatus, str] = {
    MilestoneStatus.PENDING: ":white_circle:",
    MilestoneStatus.FUNDED: ":large_blue_circle:",
    MilestoneStatus.SUBMITTED: ":large_yellow_circle:",
    MilestoneStatus.RELEASED: ":white_check_mark:",
    MilestoneStatus.DELETED: ":wastebasket:",
    MilestoneStatus.DISPUTED: ":scales:",
}

REQUEST_BADGE: dict[RequestStatus, str] = {
    RequestStatus.PENDING: ":hourglass_flowing_sand: Pending",
    RequestStatus.ACCEPTED: ":white_check_mark: Accepted",
    RequestStatus.DECLINED: ":x: Declined",
    RequestStatus.WITHDRAWN: ":leftwards_arrow_with_hook: Withdrawn",
    RequestStatus.CANCELLED: ":no_entry_sign: Cancelled",
    RequestStatus.COUNTERED: ":arrows_counterclockwise: Countered",
}

ROLE_LABEL: dict[Role, str] = {
    Role.CLIENT: "client",
    Role.FREELANCER: "freelancer",
    Role.MANAGER: "agency manager",
    Role.MEMBER: "agency member",
}

FIELD_LABEL: dict[str, str] = {
    "title": "Title",
    "amount_minor": "Amount",
    "due_date": "Due",
    "description": "Description",
}
FIELD_ORDER = ("title", "amount_minor", "due_date", "description")


# --------------------------------------------------------------------------------------
# Contracts and parties


def contract_title(contract: Contract, limit: int = TITLE_LIMIT) -> str:
    return clip(contract.title, limit, one_line=True)


def contract_ref(contract: Contract) -> str:
    """E.g. "contract 12 · *Website redesign*"."""
    return f"contract {contract.id} · *{contract_title(contract, SHORT_TITLE_LIMIT)}*"


def provider_name(contract: Contract) -> str:
    """The provider side in a few words: "<@F>" or "*Pixel &amp; Co*"."""
    if contract.is_agency:
        return f"*{clip(contract.agency_name or '', SHORT_TITLE_LIMIT, one_line=True)}*"
    return user(contract.freelancer_id) if contract.freelancer_id else "the provider"


def provider_speakers(contract: Contract) -> str:
    """Who speaks for the provider side: "<@F>" or "an agency manager (<@M1> or <@M2>)"."""
    if contract.is_agency:
        managers = contract.ids_with_role(Role.MANAGER)
        if len(managers) == 1:
            return f"{user(managers[0])} (agency manager)"
        return f"an agency manager ({users(managers, conjunction='or')})"
    return user(contract.freelancer_id) if contract.freelancer_id else "the provider"


def provider_workers(contract: Contract) -> list[str]:
    """Everyone on the provider side who does the work (and may submit it)."""
    return contract.ids_with_role(Role.FREELANCER, Role.MANAGER, Role.MEMBER)


def parties_text(contract: Contract) -> str:
    """E.g. ":bust_in_silhouette: Client <@C>  ·  :hammer_and_wrench: Freelancer <@F>"."""
    client = f":bust_in_silhouette: Client {user(contract.client_id)}"
    if not contract.is_agency:
        freelancer = user(contract.freelancer_id) if contract.freelancer_id else "—"
        return f"{client}   :hammer_and_wrench: Freelancer {freelancer}"
    managers = contract.ids_with_role(Role.MANAGER)
    members = contract.ids_with_role(Role.MEMBER)
    agency = f":office: Agency {provider_name(contract)}"
    agency += f" — {'managers' if len(managers) > 1 else 'manager'} {users(managers)}"
    if members:
        agency += f"; {'members' if len(members) > 1 else 'member'} {users(members)}"
    return f"{client}   {agency}"


def role_label(contract: Contract, user_id: str) -> str:
    role = contract.role_of(user_id)
    return ROLE_LABEL[role] if role is not None else "not a party"


# --------------------------------------------------------------------------------------
# Milestones


def milestone_name(milestone: Milestone, limit: int = TITLE_LIMIT) -> str:
    """E.g. "*2 · Build the shop*"."""
    return f"*{milestone.number} · {clip(milestone.title, limit, one_line=True)}*"


def released_early(milestone: Milestone, currency: str | None) -> str:
    """What was paid of a milestone in progress early, and what is still held (e.g.
    " · $500.00 paid early, $1,000.00 held"); empty when nothing was."""
    early = milestone.released_early_minor or 0
    if not early or currency is None or not milestone.is_active:
        return ""
    held = money(milestone.still_held_minor, currency)
    return f" · {money(early, currency)} paid early, {held} held"


def milestone_state(milestone: Milestone, *, now: datetime, currency: str | None = None) -> str:
    """The state of a milestone in a few words, with instants as date tokens (and, with
    the `currency`, what was paid of it early)."""
    status = milestone.status
    if status == MilestoneStatus.RELEASED:
        when = f" {instant(milestone.released_at, DAY)}" if milestone.released_at else ""
        how = " (automatic release)" if milestone.released_automatically else ""
        return f"*paid*{when}{how}"
    if status == MilestoneStatus.SUBMITTED:
        if milestone.auto_release_at:
            return (
                f"*submitted* — automatic release {instant(milestone.auto_release_at)}"
                f"{released_early(milestone, currency)}"
            )
        return f"*submitted* — waiting for review{released_early(milestone, currency)}"
    if status == MilestoneStatus.FUNDED:
        late = " — :warning: past due" if milestone.due_date < now.date() else ""
        early = released_early(milestone, currency)
        if milestone.changes_requested_at is not None:
            return f"*funded* — changes requested{late}{early}"
        return f"*funded* — work in progress{late}{early}"
    if status == MilestoneStatus.DELETED:
        return "deleted"
    if status == MilestoneStatus.DISPUTED:
        return "*disputed* — escrow frozen until the dispute is settled"
    if milestone.refunded_at is not None:
        return f"*refunded* {instant(milestone.refunded_at, DAY)}"
    return "not funded yet"


def milestone_line(
    milestone: Milestone,
    currency: str,
    *,
    now: datetime,
    description_limit: int = 0,
    title_limit: int = TITLE_LIMIT,
    payment: str = "",
) -> str:
    """One milestone on a card: emoji, number, title, amount, due date, state (and
    `payment`, its payment through the provider in words: "payment pending")."""
    amount = money(milestone.amount_minor, currency)
    if milestone.status == MilestoneStatus.DELETED:
        title = clip(milestone.title, title_limit, one_line=True)
        return (
            f"{MILESTONE_EMOJI[milestone.status]} ~{milestone.number} · {title} · {amount}~ deleted"
        )
    emoji = MILESTONE_EMOJI[milestone.status]
    if milestone.status == MilestoneStatus.PENDING and milestone.refunded_at is not None:
        emoji = ":leftwards_arrow_with_hook:"
    line = (
        f"{emoji} {milestone_name(milestone, title_limit)} · {amount} · "
        f"due {due(milestone.due_date)} · "
        f"{milestone_state(milestone, now=now, currency=currency)}"
    )
    if payment:
        line += f" · {payment}"
    description = milestone.description or ""
    if description_limit and description.strip():
        line += "\n>" + clip(description, description_limit, one_line=True)
    return line


# --------------------------------------------------------------------------------------
# What comes next


def next_text(snap: ContractSnapshot, *, viewer: str | None = None) -> str:
    """The next step in words: "<@C> funds …", or "Fund milestone 2 (…)." for the viewer."""
    contract = snap.contract
    action = snap.next_action
    mine = viewer is not None and viewer in action.owed_by
    milestone = action.milestone
    kind = action.kind
    if kind == Next.ADD_MILESTONES:
        return (
            "Add the first milestone — either side can."
            if mine
            else ("Either side adds the first milestone.")
        )
    if kind == Next.AGREE:
        if mine:
            return "Agree to the terms — the contract starts once both sides agree."
        waiting: list[str] = []
        if not snap.client_agreed:
            waiting.append(user(contract.client_id))
        if not snap.provider_agreed:
            waiting.append(provider_speakers(contract))
        verb = "agree" if len(waiting) > 1 else "agrees"
        return f"{join_words(waiting)} {verb} to the terms."
    if kind == Next.ANSWER_REQUEST and action.request is not None:
        number = action.request.number
        if mine:
            return f"Accept or decline change request #{number}."
        answering = users(list(action.owed_by), conjunction="or") or user(contract.client_id)
        return f"{answering} accepts or declines change request #{number}."
    if kind == Next.FUND and milestone is not None:
        amount = money(milestone.amount_minor, contract.currency)
        paying = snap.payments.get(milestone.id)
        if paying == PaymentState.PENDING:
            if mine:
                return (
                    f"Pay for milestone {milestone.number} ({amount}) with the link I sent "
                    "you; *Fund* shows it again."
                )
            return (
                f"{user(contract.client_id)} pays for milestone {milestone.number} ({amount}) "
                "with Stripe — payment pending."
            )
        if paying == PaymentState.FAILED:
            if mine:
                return (
                    f"The payment for milestone {milestone.number} ({amount}) failed: fund "
                    "it again for a new link."
                )
            return (
                f"{user(contract.client_id)} funds milestone {milestone.number} ({amount}) "
                "again — the payment failed."
            )
        if mine:
            return f"Fund milestone {milestone.number} ({amount})."
        return f"{user(contract.client_id)} funds milestone {milestone.number} ({amount})."
    if kind == Next.WORK and milestone is not None:
        if mine:
            return f"Deliver milestone {milestone.number} and `/milestone submit` it."
        return f"{provider_name(contract)} delivers milestone {milestone.number}."
    if kind == Next.REVIEW and milestone is not None:
        when = f" — automatic release {instant(action.due_at)}" if action.due_at else ""
        if mine:
            return f"Review milestone {milestone.number}: approve or request changes{when}."
        return (
            f"{user(contract.client_id)} approves milestone {milestone.number} "
            f"or requests changes{when}."
        )
    if kind == Next.COMPLETE:
        return "Every milestone is settled :tada: Either side can `/milestone end` the contract."
    if kind == Next.CLOSED:
        return closed_text(contract)
    if kind == Next.ANSWER_ENDING:
        when = f" by {instant(action.due_at)}" if action.due_at else ""
        if mine:
            return (
                f"The client ended the contract: accept the refund or dispute it{when}; "
                "otherwise it is refunded then."
            )
        return (
            f"{user(contract.client_id)} ended the contract: {provider_speakers(contract)} "
            f"accepts the refund or disputes it{when}."
        )
    if kind == Next.SETTLE_DISPUTE and milestone is not None:
        settle = f"`/milestone settle {milestone.number} <amount-to-provider>`"
        if mine:
            return (
                f"Milestone {milestone.number} is disputed: propose a split with {settle}, "
                "or agree to the one on the dispute card."
            )
        return (
            f"Milestone {milestone.number} is disputed: {user(contract.client_id)} and "
            f"{provider_speakers(contract)} agree on a split ({settle})."
        )
    return ""


def closed_text(contract: Contract) -> str:
    when = f" {instant(contract.closed_at)}" if contract.closed_at else ""
    who = f" by {actor(contract.closed_by)}" if contract.closed_by else ""
    return f"Closed{when}{who}. This contract is read-only."


def agreement_text(snap: ContractSnapshot) -> str:
    """While negotiating: who has agreed to the terms as they stand."""
    contract = snap.contract
    if snap.client_agreed and contract.client_agreed_at is not None:
        client_state = f":white_check_mark: agreed {instant(contract.client_agreed_at)}"
    else:
        client_state = ":hourglass_flowing_sand: not yet"
    client = f"Client {user(contract.client_id)} {client_state}"
    if snap.provider_agreed and contract.provider_agreed_by:
        when = f" {instant(contract.provider_agreed_at)}" if contract.provider_agreed_at else ""
        by = f" ({user(contract.provider_agreed_by)})" if contract.is_agency else ""
        provider_state = f":white_check_mark: agreed{when}{by}"
    else:
        provider_state = ":hourglass_flowing_sand: not yet"
    if contract.is_agency:
        managers = users(contract.ids_with_role(Role.MANAGER), conjunction="or")
        provider = f"Agency {provider_name(contract)} {provider_state}"
        if not snap.provider_agreed:
            provider += f" (a manager agrees: {managers})"
    else:
        provider = f"Freelancer {provider_name(contract)} {provider_state}"
    return f"*Agreement:* {client}  ·  {provider}"


# --------------------------------------------------------------------------------------
# Change requests


def change_fields(change: Change) -> dict[str, Any]:
    """The proposed values that really differ from the `before` snapshot."""
    before = change.before or {}
    fields = change.fields or {}
    return {
        key: fields[key]
        for key in FIELD_ORDER
        if key in fields and (change.before is None or before.get(key) != fields[key])
    }


def change_summary(change: Change) -> str:
    """E.g. "edit 2 (amount, due)", "add “Extra page”", "delete 4"."""
    if change.kind == ChangeKind.ADD:
        title = clip(str((change.fields or {}).get("title", "")), 40, one_line=True)
        return f"add “{title}”"
    if change.kind == ChangeKind.DELETE:
        return f"delete {change.milestone_number}"
    keys = [FIELD_LABEL[k].lower() for k in change_fields(change)] or ["no change"]
    return f"edit {change.milestone_number} ({', '.join(keys)})"


def request_summary(request: ChangeRequest, *, limit: int = 300) -> str:
    """One line: "#3 from <@F>: edit 2 (amount), add “Extra page”"."""
    parts = [change_summary(c) for c in request.changes]
    shown = ", ".join(parts[:4])
    if len(parts) > 4:
        shown += f" and {len(parts) - 4} more"
    return shorten(f"*#{request.number}* from {user(request.proposed_by)}: {shown}", limit)


def _value(key: str, value: Any, *, currency: str, limit: int) -> str:
    if key == "amount_minor" and isinstance(value, int) and not isinstance(value, bool):
        return money(value, currency)
    if key == "due_date":
        return due_iso(value)
    text = clip(str(value if value is not None else ""), limit, one_line=True)
    return text if text else "_(empty)_"


def before_after(
    key: str, old: Any, new: Any, *, currency: str, limit: int = 200, has_old: bool = True
) -> str:
    """E.g. "Amount: ~$1,500.00~ → *$1,800.00*" (old struck through, new in bold)."""
    label = FIELD_LABEL.get(key, escape(key))
    after = _value(key, new, currency=currency, limit=limit)
    if not has_old:
        return f"{label}: {after}"
    before = _value(key, old, currency=currency, limit=limit)
    return f"{label}: ~{before}~ → *{after}*"


def change_detail(change: Change, contract: Contract, *, limit: int = 300) -> str:
    """A change as a few lines of before → after."""
    currency = contract.currency
    fields = change.fields or {}
    before = change.before or {}
    if change.kind == ChangeKind.ADD:
        number = f" {change.milestone_number}" if change.milestone_number else ""
        title = clip(str(fields.get("title", "")), TITLE_LIMIT, one_line=True)
        line = f":heavy_plus_sign: *Add milestone{number}* · *{title}*"
        facts = []
        if isinstance(fields.get("amount_minor"), int):
            facts.append(money(fields["amount_minor"], currency))
        facts.append(f"due {due_iso(fields.get('due_date'))}")
        line += "\n" + " · ".join(facts)
        description = str(fields.get("description") or "").strip()
        if description:
            line += "\n>" + clip(description, limit, one_line=True)
        return line
    current = contract.milestone(change.milestone_number or 0)
    known = before or (current.fields() if current is not None else {})
    name = clip(str(known.get("title", "")), TITLE_LIMIT, one_line=True)
    if change.kind == ChangeKind.DELETE:
        facts = []
        if isinstance(known.get("amount_minor"), int):
            facts.append(money(known["amount_minor"], currency))
        if known.get("due_date"):
            facts.append(f"due {due_iso(known.get('due_date'))}")
        tail = f"\n~{' · '.join(facts)}~" if facts else ""
        return f":wastebasket: *Delete milestone {change.milestone_number}* · ~{name}~{tail}"
    lines = [f":pencil2: *Edit milestone {change.milestone_number}* · {name}"]
    changed = change_fields(change)
    for key, value in changed.items():
        lines.append(
            before_after(
                key, known.get(key), value, currency=currency, limit=limit, has_old=bool(known)
            )
        )
    if not changed:
        lines.append("_No field changes._")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# History events


def _data(event: Event) -> Mapping[str, Any]:
    return event.data if isinstance(event.data, Mapping) else {}


def _amount(data: Mapping[str, Any], key: str, currency: str) -> str | None:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return money(value, currency)
    return None


def _milestone_title(
    contract: Contract, event: Event, data: Mapping[str, Any], then: str | None = None
) -> str:
    """The milestone's title when the event happened: carried by the event (its
    `after` / `before` fields, or `title`), else `then` (domain.record.titles_then),
    else the current one."""
    for fields in (data.get("after"), data.get("before"), data):
        if isinstance(fields, Mapping) and fields.get("title"):
            return clip(str(fields["title"]), SHORT_TITLE_LIMIT, one_line=True)
    if then:
        return clip(then, SHORT_TITLE_LIMIT, one_line=True)
    milestone = contract.milestone(event.milestone_number or 0)
    return clip(milestone.title, SHORT_TITLE_LIMIT, one_line=True) if milestone else ""


def _milestone_ref(
    contract: Contract, event: Event, data: Mapping[str, Any], then: str | None = None
) -> str:
    title = _milestone_title(contract, event, data, then)
    number = event.milestone_number
    return f"milestone {number} *{title}*" if title else f"milestone {number}"


def _edits(data: Mapping[str, Any], currency: str, *, limit: int) -> str:
    before = data.get("before") if isinstance(data.get("before"), Mapping) else {}
    after = data.get("after") if isinstance(data.get("after"), Mapping) else {}
    assert isinstance(before, Mapping) and isinstance(after, Mapping)
    parts = [
        before_after(key, before.get(key), after[key], currency=currency, limit=limit)
        for key in FIELD_ORDER
        if key in after
    ]
    return "; ".join(parts)


def _message(data: Mapping[str, Any], key: str, limit: int) -> str:
    text = str(data.get(key) or "").strip()
    return f"\n{quote(text, limit)}" if text else ""


def event_text(
    contract: Contract,
    event: Event,
    *,
    detailed: bool,
    limit: int = 300,
    title: str | None = None,
) -> str:
    """What happened, as one short line (plus a quoted message when there is one).

    `detailed` (history) adds before → after values and quotes in full up to `limit`.
    `title`: the milestone's title at the time, for an event that doesn't carry it
    (domain.record.titles_then); without it, the current title is shown.
    """
    data = _data(event)
    currency = contract.currency
    who = actor(event.actor)
    kind = event.kind
    request = f" (change request #{event.request_number})" if event.request_number else ""
    match kind:
        case EventKind.CONTRACT_CREATED:
            title = clip(str(data.get("title") or contract.title), TITLE_LIMIT, one_line=True)
            code = escape(str(data.get("currency") or currency))
            return f"{who} created contract {contract.id} *{title}* in {code}."
        case EventKind.MILESTONE_ADDED:
            after = data.get("after") if isinstance(data.get("after"), Mapping) else {}
            assert isinstance(after, Mapping)
            facts = [f for f in (_amount(after, "amount_minor", currency),) if f]
            if after.get("due_date"):
                facts.append(f"due {due_iso(after.get('due_date'))}")
            tail = f" — {', '.join(facts)}" if facts else ""
            line = f"{who} added {_milestone_ref(contract, event, data, title)}{tail}{request}."
            return line + _message(data, "message", limit)
        case EventKind.MILESTONE_EDITED:
            changes = _edits(data, currency, limit=limit if detailed else 60)
            line = f"{who} edited {_milestone_ref(contract, event, data, title)}{request}"
            line += f": {changes}." if changes else "."
            return line + _message(data, "message", limit)
        case EventKind.MILESTONE_DELETED:
            before = data.get("before") if isinstance(data.get("before"), Mapping) else {}
            assert isinstance(before, Mapping)
            title = _milestone_title(contract, event, data, title)
            amount = _amount(before, "amount_minor", currency)
            struck = f"~{title} · {amount}~" if amount else f"~{title}~"
            line = f"{who} deleted milestone {event.milestone_number} {struck}{request}."
            return line + _message(data, "message", limit)
        case EventKind.AGREEMENT_CLEARED:
            return "The milestones changed, so earlier agreement to the terms was cleared."
        case EventKind.TERMS_AGREED:
            side = "client" if data.get("side") == "client" else "provider"
            total = _amount(data, "total_minor", currency)
            return f"{who} agreed to the terms for the {side} side" + (
                f" (total {total})." if total else "."
            )
        case EventKind.CONTRACT_ACTIVATED:
            total = _amount(data, "total_minor", currency)
            tail = f" Contract total {total}." if total else ""
            return f"Contract {contract.id} is active: both sides agreed.{tail}"
        case EventKind.MILESTONE_FUNDED:
            amount = _amount(data, "amount_minor", currency)
            paid = f" with {amount}" if amount else ""
            return f"{who} funded {_milestone_ref(contract, event, data, title)}{paid}."
        case EventKind.WORK_SUBMITTED:
            line = f"{who} submitted work for {_milestone_ref(contract, event, data, title)}."
            return line + (_message(data, "note", limit) if detailed else "")
        case EventKind.CHANGES_REQUESTED:
            line = f"{who} asked for changes to {_milestone_ref(contract, event, data, title)}."
            return line + _message(data, "note", limit)
        case EventKind.MILESTONE_RELEASED:
            amount = _amount(data, "amount_minor", currency) or "escrow"
            ref = _milestone_ref(contract, event, data, title)
            if data.get("automatic"):
                return f"M{ref[1:]} was released automatically: {amount} paid."
            if data.get("split"):
                return f"{amount} of {ref} was released to the provider under the settlement."
            return f"{who} approved {ref}: {amount} released."
        case EventKind.ESCROW_TOPPED_UP:
            amount = _amount(data, "amount_minor", currency) or "the difference"
            return f"Escrow topped up by {amount} for milestone {event.milestone_number}{request}."
        case EventKind.REQUEST_PROPOSED:
            raw = data.get("changes")
            count = len(raw) if isinstance(raw, list) else 0
            revises = data.get("revises")
            again = f", replacing #{revises}" if isinstance(revises, int) else ""
            counters = data.get("counters")
            if isinstance(counters, int) and not isinstance(counters, bool):
                again += f", a counter-offer to #{counters}"
            line = (
                f"{who} proposed change request #{event.request_number} "
                f"({plural(count, 'change')}{again})."
            )
            return line + (_message(data, "message", limit) if detailed else "")
        case EventKind.REQUEST_ACCEPTED:
            top_up = data.get("top_up")
            extra = " The changes are applied."
            if isinstance(top_up, int) and not isinstance(top_up, bool) and top_up > 0:
                extra += f" Escrow topped up by {money(top_up, currency)}."
            return f"{who} accepted change request #{event.request_number}.{extra}"
        case EventKind.REQUEST_DECLINED:
            line = f"{who} declined change request #{event.request_number}."
            return line + _message(data, "reason", limit)
        case EventKind.REQUEST_WITHDRAWN:
            replaced = data.get("replaced_by")
            if isinstance(replaced, int) and not isinstance(replaced, bool):
                return (
                    f"{who} revised change request #{event.request_number} as change "
                    f"request #{replaced}."
                )
            return f"{who} withdrew change request #{event.request_number}."
        case EventKind.REQUEST_COUNTERED:
            replaced = data.get("replaced_by")
            number = f"#{replaced}" if isinstance(replaced, int) else "a new one"
            return (
                f"{who} answered change request #{event.request_number} with a "
                f"counter-offer, change request {number}."
            )
        case EventKind.REQUEST_CANCELLED:
            reason = clip(str(data.get("reason") or ""), limit, one_line=True)
            tail = f": {reason}" if reason else "."
            return f"Change request #{event.request_number} was cancelled{tail}"
        case EventKind.CONTRACT_ENDED:
            refunded = data.get("refunded_minor")
            extra = ""
            if isinstance(refunded, int) and not isinstance(refunded, bool) and refunded > 0:
                extra = f" {money(refunded, currency)} refunded to {user(contract.client_id)}."
            how = data.get("how")
            if how == "refund_accepted":
                return f"{who} accepted the refund; contract {contract.id} is closed.{extra}"
            if how == "window_ran_out":
                return (
                    f"Nobody answered the ending of contract {contract.id} in time, so it "
                    f"is closed.{extra}"
                )
            if how == "dispute_settled":
                return f"Contract {contract.id} is closed: its dispute was settled.{extra}"
            return f"{who} ended contract {contract.id}.{extra}"
        case EventKind.CONTRACT_ENDING:
            held = _amount(data, "held_minor", currency) or "the escrow"
            ref = _milestone_ref(contract, event, data, title)
            ends = data.get("window_ends_at")
            until = f" until {_instant_text(ends)}" if ends else ""
            return (
                f"{who} ended contract {contract.id}: {held} held for {ref} goes back to "
                f"them unless the provider side disputes it{until}."
            )
        case EventKind.MILESTONE_DISPUTED:
            ref = _milestone_ref(contract, event, data, title)
            held = _amount(data, "held_minor", currency) or "its escrow"
            what = "the end-refund of" if data.get("side") == "provider" else "the work on"
            line = f"{who} disputed {what} {ref}: {held} frozen in escrow."
            return line + _message(data, "reason", limit)
        case EventKind.SPLIT_PROPOSED:
            ref = _milestone_ref(contract, event, data, title)
            to_provider = _amount(data, "to_provider_minor", currency) or "?"
            to_client = _amount(data, "to_client_minor", currency) or "?"
            return (
                f"{who} proposed to settle {ref}: {to_provider} to the provider, "
                f"{to_client} back to the client."
            )
        case EventKind.DISPUTE_SETTLED:
            ref = _milestone_ref(contract, event, data, title)
            to_provider = _amount(data, "to_provider_minor", currency) or "?"
            to_client = _amount(data, "to_client_minor", currency) or "?"
            split = f"{to_provider} to the provider, {to_client} back to the client"
            closed = f" Contract {contract.id} is closed." if data.get("closes_contract") else ""
            if data.get("how") == "operator":
                line = f"An operator decided the dispute over {ref}: {split}.{closed}"
                return line + _message(data, "reason", limit)
            return f"{who} agreed to settle {ref}: {split}.{closed}"
        case EventKind.MILESTONE_PARTLY_RELEASED:
            amount = _amount(data, "amount_minor", currency) or "part of the escrow"
            rest = _amount(data, "held_minor", currency)
            stays = f"; {rest} stays in escrow for it" if rest else ""
            ref = _milestone_ref(contract, event, data, title)
            return f"{who} released {amount} of {ref} early{stays}."
        case EventKind.BONUS_PAID:
            amount = _amount(data, "amount_minor", currency) or "a bonus"
            line = f"{who} paid {provider_name(contract)} a bonus of {amount}, outside escrow."
            return line + _message(data, "note", limit)
        case EventKind.REVIEW_TIME_ASKED:
            days = _days_text(data)
            ref = _milestone_ref(contract, event, data, title)
            return (
                f"{who} asked for {days} to review {ref}; {provider_speakers(contract)} "
                "can give them with *Give more time* on the work."
            )
        case EventKind.REVIEW_EXTENDED:
            days = _days_text(data)
            ref = _milestone_ref(contract, event, data, title)
            when = _instant_of(data, "auto_release_at")
            moved = f": automatic release {when}" if when else ""
            return f"{who} gave {days} to review {ref}{moved}."
        case EventKind.REVIEW_TIME_DECLINED:
            days = _days_text(data)
            ref = _milestone_ref(contract, event, data, title)
            when = _instant_of(data, "auto_release_at")
            stays = f" (automatic release {when})" if when else ""
            return f"{who} kept the review date of {ref}{stays} instead of giving {days}."
        case _:  # a kind this version does not know (written by a newer one)
            return f"{who}: {escape(str(kind).replace('_', ' '))}{request}."


def _days_text(data: Mapping[str, Any]) -> str:
    days = data.get("days")
    if isinstance(days, int) and not isinstance(days, bool):
        return plural(days, "more day")
    return "more time"


def _instant_of(data: Mapping[str, Any], key: str) -> str | None:
    try:
        return instant(datetime.fromisoformat(str(data.get(key))))
    except ValueError:
        return None


def event_emoji(kind: EventKind) -> str:
    return _EVENT_EMOJI.get(kind, ":small_blue_diamond:")


_EVENT_EMOJI = {
    EventKind.CONTRACT_CREATED: ":page_facing_up:",
    EventKind.MILESTONE_ADDED: ":heavy_plus_sign:",
    EventKind.MILESTONE_EDITED: ":pencil2:",
    EventKind.MILESTONE_DELETED: ":wastebasket:",
    EventKind.AGREEMENT_CLEARED: ":arrows_counterclockwise:",
    EventKind.TERMS_AGREED: ":handshake:",
    EventKind.CONTRACT_ACTIVATED: ":rocket:",
    EventKind.MILESTONE_FUNDED: ":moneybag:",
    EventKind.WORK_SUBMITTED: ":package:",
    EventKind.CHANGES_REQUESTED: ":leftwards_arrow_with_hook:",
    EventKind.MILESTONE_RELEASED: ":white_check_mark:",
    EventKind.ESCROW_TOPPED_UP: ":heavy_dollar_sign:",
    EventKind.REQUEST_PROPOSED: ":memo:",
    EventKind.REQUEST_ACCEPTED: ":white_check_mark:",
    EventKind.REQUEST_DECLINED: ":x:",
    EventKind.REQUEST_WITHDRAWN: ":leftwards_arrow_with_hook:",
    EventKind.REQUEST_CANCELLED: ":no_entry_sign:",
    EventKind.REQUEST_COUNTERED: ":arrows_counterclockwise:",
    EventKind.CONTRACT_ENDED: ":lock:",
    EventKind.CONTRACT_ENDING: ":hourglass_flowing_sand:",
    EventKind.MILESTONE_DISPUTED: ":scales:",
    EventKind.SPLIT_PROPOSED: ":speech_balloon:",
    EventKind.DISPUTE_SETTLED: ":handshake:",
    EventKind.MILESTONE_PARTLY_RELEASED: ":money_with_wings:",
    EventKind.BONUS_PAID: ":gift:",
    EventKind.REVIEW_TIME_ASKED: ":hourglass:",
    EventKind.REVIEW_EXTENDED: ":calendar:",
    EventKind.REVIEW_TIME_DECLINED: ":calendar:",
}


def _instant_text(value: Any) -> str:
    """An instant kept in an event's data (ISO text), as a date token."""
    try:
        return instant(datetime.fromisoformat(str(value)))
    except ValueError:
        return escape(str(value))
