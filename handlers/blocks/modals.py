"""Modals (`slack_sdk.models.views.View`) and the functions that read their state back.

Every input uses one id as block id and action id (`handlers.blocks.fields`). A
`read_*` function takes `view["state"]["values"]` and returns plain Python values:
stripped strings ("" when left empty), `date`s, user ids. Amounts stay the text the
person typed (only the domain can parse them in the contract's currency).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypedDict

from slack_sdk.models.blocks import (
    Block,
    CheckboxesElement,
    DatePickerElement,
    InputBlock,
    Option,
    PlainTextInputElement,
    StaticSelectElement,
    UserMultiSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from domain.errors import DomainError
from domain.model import (
    ChangeKind,
    ChangeRequest,
    Contract,
    ContractStatus,
    Milestone,
    MilestoneStatus,
)
from domain.money import MAX_AMOUNT_TEXT_LENGTH, minor_digits, parse_amount, to_major_str
from domain.policy import MAX_TEXT, MAX_TITLE
from domain.services import ChangeInput, MilestoneDeletion, MilestoneEdit, NewMilestone
from handlers.blocks import fields as F
from handlers.blocks.describe import (
    SHORT_TITLE_LIMIT,
    contract_title,
    milestone_name,
    request_summary,
)
from handlers.blocks.format import money, plural, user
from handlers.blocks.kit import VIEW_BLOCK_LIMIT, context, plain, section
from handlers.ids import View as ViewId
from handlers.payloads import ModalContext

CURRENCIES: tuple[tuple[str, str], ...] = (
    ("USD", "US dollar"),
    ("EUR", "Euro"),
    ("GBP", "British pound"),
    ("CAD", "Canadian dollar"),
    ("AUD", "Australian dollar"),
    ("NZD", "New Zealand dollar"),
    ("JPY", "Japanese yen"),
    ("CHF", "Swiss franc"),
    ("INR", "Indian rupee"),
    ("SGD", "Singapore dollar"),
    ("HKD", "Hong Kong dollar"),
    ("CNY", "Chinese yuan"),
    ("KRW", "South Korean won"),
    ("SEK", "Swedish krona"),
    ("NOK", "Norwegian krone"),
    ("DKK", "Danish krone"),
    ("PLN", "Polish złoty"),
    ("CZK", "Czech koruna"),
    ("HUF", "Hungarian forint"),
    ("RON", "Romanian leu"),
    ("TRY", "Turkish lira"),
    ("ILS", "Israeli new shekel"),
    ("AED", "UAE dirham"),
    ("SAR", "Saudi riyal"),
    ("ZAR", "South African rand"),
    ("NGN", "Nigerian naira"),
    ("KES", "Kenyan shilling"),
    ("EGP", "Egyptian pound"),
    ("BRL", "Brazilian real"),
    ("MXN", "Mexican peso"),
    ("ARS", "Argentine peso"),
    ("CLP", "Chilean peso"),
    ("COP", "Colombian peso"),
    ("PHP", "Philippine peso"),
    ("IDR", "Indonesian rupiah"),
    ("MYR", "Malaysian ringgit"),
    ("THB", "Thai baht"),
    ("VND", "Vietnamese đồng"),
    ("PKR", "Pakistani rupee"),
    ("BDT", "Bangladeshi taka"),
    ("UAH", "Ukrainian hryvnia"),
    ("KWD", "Kuwaiti dinar"),
)
DEFAULT_CURRENCY = "USD"
MAX_PROPOSE_MILESTONES = 15  # editable milestones shown in the propose-changes modal


# --------------------------------------------------------------------------------------
# Form values


class NewContractForm(TypedDict):
    title: str
    client_id: str | None
    freelancer_id: str | None
    agency_name: str | None
    manager_ids: list[str]
    member_ids: list[str]
    currency: str


class MilestoneForm(TypedDict):
    title: str
    amount: str
    due_date: date | None
    description: str
    message: str


class EditForm(TypedDict):
    """Only what changed; None means "left as it was"."""

    title: str | None
    amount: str | None
    due_date: date | None
    description: str | None
    message: str


class ProposeForm(TypedDict):
    changes: list[ChangeInput]
    message: str
    errors: dict[str, str]  # block id → message, for inputs the form itself finds wrong


class DeclineForm(TypedDict):
    reason: str


class RequestChangesForm(TypedDict):
    note: str


Values = Mapping[str, Mapping[str, Mapping[str, Any]]]


# --------------------------------------------------------------------------------------
# Inputs


def _text_input(
    block_id: str,
    label: str,
    *,
    max_length: int,
    initial: str | None = None,
    multiline: bool = False,
    optional: bool = False,
    placeholder: str | None = None,
    hint: str | None = None,
) -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label=plain(label),
        optional=optional,
        hint=plain(hint) if hint else None,
        element=PlainTextInputElement(
            action_id=block_id,
            initial_value=initial or None,
            multiline=multiline,
            max_length=max_length,
            placeholder=plain(placeholder) if placeholder else None,
        ),
    )


def _date_input(
    block_id: str, label: str, *, initial: date | None = None, optional: bool = False
) -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label=plain(label),
        optional=optional,
        element=DatePickerElement(
            action_id=block_id,
            initial_date=initial.isoformat() if initial else None,
            placeholder=plain("Pick a date"),
        ),
    )


def _amount_example(currency: str) -> str:
    digits = minor_digits(currency)
    return "1500 or 1,500.50" if digits == 2 else ("150000" if digits == 0 else "1500")


def _amount_input(
    block_id: str,
    currency: str,
    *,
    initial: str | None = None,
    optional: bool = False,
    label: str = "Amount",
    hint: str | None = None,
) -> InputBlock:
    return _text_input(
        block_id,
        f"{label} ({currency})",
        max_length=MAX_AMOUNT_TEXT_LENGTH,
        initial=initial,
        optional=optional,
        placeholder=f"e.g. {_amount_example(currency)}",
        hint=hint,
    )


def _modal(
    callback_id: ViewId,
    title: str,
    ctx: ModalContext,
    blocks: list[Block],
    *,
    submit: str,
) -> View:
    return View(
        type="modal",
        callback_id=str(callback_id),
        title=plain(title[:24]),
        submit=plain(submit),
        close=plain("Cancel"),
        private_metadata=ctx.dump(),
        blocks=blocks,
    )


def _contract_line(contract: Contract) -> str:
    return (
        f"Contract {contract.id} · *{contract_title(contract, SHORT_TITLE_LIMIT)}* · "
        f"{contract.currency}"
    )


# --------------------------------------------------------------------------------------
# New contract


def build_new_contract_modal(
    ctx: ModalContext, *, client_id: str | None = None, title: str = ""
) -> View:
    """`/milestone new` with no arguments. A freelancer, or an agency name with managers."""
    currency_options = [Option(value=code, label=f"{code} — {name}") for code, name in CURRENCIES]
    initial = next(o for o in currency_options if o.value == DEFAULT_CURRENCY)
    blocks: list[Block] = [
        _text_input(
            F.TITLE,
            "Contract title",
            max_length=MAX_TITLE,
            initial=title,
            placeholder="e.g. Website redesign",
        ),
        InputBlock(
            block_id=F.CLIENT,
            label=plain("Client"),
            hint=plain("Owns the contract: funds milestones and approves the work."),
            element=UserSelectElement(
                action_id=F.CLIENT,
                placeholder=plain("Pick the client"),
                initial_user=client_id,
            ),
        ),
        section(
            "*Who does the work?* Pick a freelancer — *or* name an agency with at least "
            "one manager."
        ),
        InputBlock(
            block_id=F.FREELANCER,
            label=plain("Freelancer"),
            optional=True,
            element=UserSelectElement(
                action_id=F.FREELANCER, placeholder=plain("Pick the freelancer")
            ),
        ),
        _text_input(
            F.AGENCY_NAME,
            "Agency name",
            max_length=MAX_TITLE,
            optional=True,
            placeholder="e.g. Pixel & Co",
        ),
        InputBlock(
            block_id=F.MANAGERS,
            label=plain("Agency managers"),
            optional=True,
            hint=plain("Managers propose changes and agree to terms for the agency."),
            element=UserMultiSelectElement(
                action_id=F.MANAGERS, placeholder=plain("Pick one or more managers")
            ),
        ),
        InputBlock(
            block_id=F.MEMBERS,
            label=plain("Agency members"),
            optional=True,
            hint=plain("Members can submit work."),
            element=UserMultiSelectElement(
                action_id=F.MEMBERS, placeholder=plain("Pick members (optional)")
            ),
        ),
        InputBlock(
            block_id=F.CURRENCY,
            label=plain("Currency"),
            element=StaticSelectElement(
                action_id=F.CURRENCY,
                options=currency_options,
                initial_option=initial,
                placeholder=plain("Pick a currency"),
            ),
        ),
        context("Everyone named should be in this channel: the contract lives here."),
    ]
    return _modal(ViewId.NEW_CONTRACT, "New contract", ctx, blocks, submit="Create")


def read_new_contract(values: Values) -> NewContractForm:
    agency = _text(values, F.AGENCY_NAME)
    return {
        "title": _text(values, F.TITLE),
        "client_id": _user(values, F.CLIENT),
        "freelancer_id": _user(values, F.FREELANCER),
        "agency_name": agency or None,
        "manager_ids": _users(values, F.MANAGERS),
        "member_ids": _users(values, F.MEMBERS),
        "currency": _option(values, F.CURRENCY) or DEFAULT_CURRENCY,
    }


def new_contract_errors(form: NewContractForm) -> dict[str, str]:
    """Shape errors the domain can't place next to an input (freelancer xor agency)."""
    errors: dict[str, str] = {}
    if not form["title"]:
        errors[F.TITLE] = "Give the contract a title."
    if not form["client_id"]:
        errors[F.CLIENT] = "Pick the client."
    agency = form["agency_name"] is not None or form["manager_ids"] or form["member_ids"]
    if form["freelancer_id"] and agency:
        errors[F.FREELANCER] = "Pick a freelancer or an agency, not both."
    elif not form["freelancer_id"] and not agency:
        errors[F.FREELANCER] = "Pick a freelancer, or name an agency below."
    elif agency:
        if form["agency_name"] is None:
            errors[F.AGENCY_NAME] = "Name the agency."
        if not form["manager_ids"]:
            errors[F.MANAGERS] = "An agency needs at least one manager."
    return errors


# --------------------------------------------------------------------------------------
# Add / edit a milestone


def build_add_milestone_modal(ctx: ModalContext, contract: Contract) -> View:
    request = contract.status == ContractStatus.ACTIVE
    message_hint = (
        "Shown in the channel with the change (sent with the request when it needs the "
        "client's answer)."
        if request
        else "Shown in the channel with the change."
    )
    blocks: list[Block] = [
        context(_contract_line(contract)),
        _text_input(F.TITLE, "Title", max_length=MAX_TITLE, placeholder="e.g. Wireframes"),
        _amount_input(F.AMOUNT, contract.currency),
        _date_input(F.DUE_DATE, "Due date"),
        _text_input(
            F.DESCRIPTION,
            "Description",
            max_length=MAX_TEXT,
            multiline=True,
            optional=True,
            placeholder="What will be delivered",
        ),
        _text_input(
            F.MESSAGE,
            "Message",
            max_length=MAX_TEXT,
            multiline=True,
            optional=True,
            hint=message_hint,
        ),
    ]
    return _modal(ViewId.ADD_MILESTONE, "Add milestone", ctx, blocks, submit="Add")


def read_add_milestone(values: Values) -> MilestoneForm:
    return {
        "title": _text(values, F.TITLE),
        "amount": _text(values, F.AMOUNT),
        "due_date": _date(values, F.DUE_DATE),
        "description": _text(values, F.DESCRIPTION),
        "message": _text(values, F.MESSAGE),
    }


def build_edit_milestone_modal(ctx: ModalContext, contract: Contract, milestone: Milestone) -> View:
    notes = [_contract_line(contract) + f" · milestone {milestone.number}"]
    if milestone.is_active:
        notes.append(
            f"Milestone {milestone.number} is {milestone.status.value}: the client can't "
            "edit it directly. From the provider side this becomes a change request; its "
            "amount can only go up."
        )
    elif contract.status == ContractStatus.ACTIVE:
        notes.append(
            "The client's changes apply at once; the provider side's become a change "
            "request for the client."
        )
    blocks: list[Block] = [
        context(*notes),
        _text_input(F.TITLE, "Title", max_length=MAX_TITLE, initial=milestone.title),
        _amount_input(
            F.AMOUNT,
            contract.currency,
            initial=to_major_str(milestone.amount_minor, contract.currency),
        ),
        _date_input(F.DUE_DATE, "Due date", initial=milestone.due_date),
        _text_input(
            F.DESCRIPTION,
            "Description",
            max_length=MAX_TEXT,
            multiline=True,
            optional=True,
            initial=milestone.description or None,
        ),
        _text_input(
            F.MESSAGE,
            "Message",
            max_length=MAX_TEXT,
            multiline=True,
            optional=True,
            hint="Why the change — shown with it in the channel.",
        ),
    ]
    return _modal(
        ViewId.EDIT_MILESTONE, f"Edit milestone {milestone.number}", ctx, blocks, submit="Save"
    )


def read_edit_milestone(values: Values, milestone: Milestone, *, currency: str) -> EditForm:
    """The edit form's values, with None for every field left as the milestone has it.

    `milestone` is the milestone as it is now (reload it on submit). An amount that
    reads as the same number ("1,500" for 1500.00) counts as unchanged; one that does
    not parse is returned as typed, for the domain to refuse with its reason.
    """
    title = _text(values, F.TITLE)
    amount = _text(values, F.AMOUNT)
    due_date = _date(values, F.DUE_DATE)
    description = _text(values, F.DESCRIPTION)
    return {
        "title": title if title and title != milestone.title else None,
        "amount": amount if amount and not _same_amount(amount, milestone, currency) else None,
        "due_date": due_date if due_date and due_date != milestone.due_date else None,
        "description": description
        if description != (milestone.description or "").strip()
        else None,
        "message": _text(values, F.MESSAGE),
    }


def _same_amount(text: str, milestone: Milestone, currency: str) -> bool:
    try:
        return parse_amount(text, currency, max_major=10**15) == milestone.amount_minor
    except DomainError:
        return False


# --------------------------------------------------------------------------------------
# Propose changes (several milestones at once)


def proposable_milestones(contract: Contract) -> list[Milestone]:
    """Milestones that can still change: live and not released."""
    return [
        m
        for m in contract.milestones
        if m.status not in (MilestoneStatus.DELETED, MilestoneStatus.RELEASED)
    ]


@dataclass(frozen=True)
class Replacing:
    """A propose-changes form that replaces a pending request in one step, prefilled with
    what the request proposes: a counter-offer (*Suggest changes*) or a revision."""

    request: ChangeRequest
    callback: ViewId  # ViewId.COUNTER or ViewId.REVISE
    title: str  # at most 24 characters
    note: str  # what the form does, first in it (mrkdwn)
    answerer: str  # who answers the new request (mrkdwn)
    recipient: str  # for the message's label: "the client", "the freelancer", …
    submit: str = "Send"


MAX_NEW_SLOTS = 5  # new milestones a prefilled form shows (one otherwise)


def _proposals(
    request: ChangeRequest | None,
) -> tuple[dict[int, dict[str, Any]], set[int], list[dict[str, Any]]]:
    """What a request proposes, to prefill the form: edited fields by milestone number,
    the milestones to delete, and the new milestones (in the milestone's own keys)."""
    edits: dict[int, dict[str, Any]] = {}
    deletes: set[int] = set()
    adds: list[dict[str, Any]] = []
    for change in request.changes if request is not None else []:
        fields = dict(change.fields or {})
        if change.kind == ChangeKind.ADD:
            adds.append(fields)
        elif change.milestone_number is not None and change.kind == ChangeKind.DELETE:
            deletes.add(change.milestone_number)
        elif change.milestone_number is not None:
            edits[change.milestone_number] = fields
    return edits, deletes, adds


def _iso_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def build_propose_changes_modal(
    ctx: ModalContext,
    contract: Contract,
    *,
    direct: bool = False,
    replacing: Replacing | None = None,
) -> View:
    """Edit several milestones (title, amount, due date, description; delete a pending
    one) and add one.

    For the provider side on an active contract the result is one change request.
    With `direct` (the client, or anyone while negotiating) the changes apply at once;
    on an active contract only future (pending) milestones are then editable. With
    `replacing`, the form answers or revises a pending request and starts out with what
    that request proposes (the milestones it changes shown first, a slot for each
    milestone it adds).
    Shows at most `MAX_PROPOSE_MILESTONES` milestones (the first ones in order) and says
    so; the others stay reachable with `/milestone edit <n>`. ≤ 100 blocks.
    """
    currency = contract.currency
    edits, deletes, adds = _proposals(replacing.request if replacing else None)
    candidates = proposable_milestones(contract)
    if direct and contract.status == ContractStatus.ACTIVE:
        candidates = [m for m in candidates if m.status == MilestoneStatus.PENDING]
    slots = min(max(1, len(adds)), MAX_NEW_SLOTS)
    room = MAX_PROPOSE_MILESTONES - (5 * (slots - 1) + 5) // 6  # a slot takes 5 blocks
    touched = [m for m in candidates if m.number in edits or m.number in deletes][:room]
    others = [m for m in candidates if m not in touched]
    shown = sorted(touched + others[: room - len(touched)], key=lambda m: m.number)
    if direct:
        outcome = "Changes apply at once and are announced in the channel."
    else:
        answerer = replacing.answerer if replacing else user(contract.client_id)
        outcome = f"{answerer} accepts or declines the request as a whole."
    intro = f"{replacing.note}\n" if replacing else ""
    blocks: list[Block] = [
        section(
            f"{_contract_line(contract)}\n{intro}Change what you need below — only what you "
            f"change counts. {outcome}"
        )
    ]
    if not shown:
        blocks.append(context("No milestone can change any more; you can still add one."))
    for milestone in shown:
        amount = money(milestone.amount_minor, currency)
        if milestone.is_active:
            note = f"{milestone.status.value}, {amount} in escrow: the amount can only go up"
        else:
            note = f"not funded yet · {amount}"
        proposed = edits.get(milestone.number, {})
        blocks.append(section(f"{milestone_name(milestone)} — _{note}_"))
        blocks.append(
            _text_input(
                F.propose_block(milestone.number, "title"),
                "Title",
                max_length=MAX_TITLE,
                initial=str(proposed.get("title") or milestone.title),
                optional=True,
            )
        )
        amount_minor = proposed.get("amount_minor")
        blocks.append(
            _amount_input(
                F.propose_block(milestone.number, "amount"),
                currency,
                initial=to_major_str(
                    amount_minor if isinstance(amount_minor, int) else milestone.amount_minor,
                    currency,
                ),
                optional=True,
            )
        )
        blocks.append(
            _date_input(
                F.propose_block(milestone.number, "due_date"),
                "Due date",
                initial=_iso_date(proposed.get("due_date")) or milestone.due_date,
                optional=True,
            )
        )
        description = proposed.get("description", milestone.description)
        blocks.append(
            _text_input(
                F.propose_block(milestone.number, "description"),
                "Description",
                max_length=MAX_TEXT,
                multiline=True,
                initial=str(description or "") or None,
                optional=True,
            )
        )
        if milestone.status == MilestoneStatus.PENDING:
            option = Option(
                value=F.DELETE_OPTION, label=f"Ask to delete milestone {milestone.number}"
            )
            blocks.append(
                InputBlock(
                    block_id=F.propose_block(milestone.number, "delete"),
                    label=plain("Delete"),
                    optional=True,
                    element=CheckboxesElement(
                        action_id=F.propose_block(milestone.number, "delete"),
                        options=[option],
                        initial_options=[option] if milestone.number in deletes else None,
                    ),
                )
            )
    if len(candidates) > len(shown):
        if shown == candidates[: len(shown)]:
            first, last = shown[0].number, shown[-1].number
            which = f"milestones {first}–{last}"
        else:
            which = "the milestones this request changes, then the first others"
        blocks.append(
            context(
                f"Showing {which}: {len(shown)} of the "
                f"{plural(len(candidates), 'milestone')} that can still change. For the "
                "others use `/milestone edit &lt;n&gt;`."
            )
        )
    for slot in range(1, slots + 1):
        added = adds[slot - 1] if slot <= len(adds) else {}
        amount_minor = added.get("amount_minor")
        heading = "*Add a new milestone* (optional)" if slot == 1 else "*Add another milestone*"
        blocks += [
            section(heading),
            _text_input(
                F.new_block(slot, "title"),
                "Title",
                max_length=MAX_TITLE,
                optional=True,
                initial=str(added.get("title") or "") or None,
            ),
            _amount_input(
                F.new_block(slot, "amount"),
                currency,
                optional=True,
                initial=(
                    to_major_str(amount_minor, currency) if isinstance(amount_minor, int) else None
                ),
            ),
            _date_input(
                F.new_block(slot, "due_date"),
                "Due date",
                optional=True,
                initial=_iso_date(added.get("due_date")),
            ),
            _text_input(
                F.new_block(slot, "description"),
                "Description",
                max_length=MAX_TEXT,
                multiline=True,
                optional=True,
                initial=str(added.get("description") or "") or None,
            ),
        ]
    if replacing is not None:
        label = f"Message to {replacing.recipient}"
    else:
        label = "Message" if direct else "Message to the client"
    blocks.append(
        _text_input(
            F.MESSAGE,
            label,
            max_length=MAX_TEXT,
            multiline=True,
            optional=True,
            placeholder="Why these changes",
        )
    )
    assert len(blocks) <= VIEW_BLOCK_LIMIT
    if replacing is not None:
        return _modal(replacing.callback, replacing.title, ctx, blocks, submit=replacing.submit)
    title = "Change milestones" if direct else "Propose changes"
    return _modal(ViewId.PROPOSE, title, ctx, blocks, submit="Save" if direct else "Send")


def read_propose_changes(values: Values, contract: Contract) -> ProposeForm:
    """The changes the person made, compared with the contract as it is now.

    Left-as-is and emptied inputs mean "no change" (but an emptied description clears
    it). A ticked delete wins over edits of the same milestone. A partly filled new
    milestone, or no change at all, gives `errors` (block id → message) to show with
    `response_action="errors"`.
    """
    edits: dict[int, dict[str, Any]] = {}
    deletes: list[int] = []
    for block_id in values:
        parsed = F.parse_propose_block(block_id)
        if parsed is None:
            continue
        number, field = parsed
        milestone = contract.milestone(number)
        if milestone is None:
            continue
        if field == "delete":
            if F.DELETE_OPTION in _options(values, block_id):
                deletes.append(number)
            continue
        if field == "title":
            title = _text(values, block_id)
            if title and title != milestone.title:
                edits.setdefault(number, {})["title"] = title
        elif field == "amount":
            amount = _text(values, block_id)
            if amount and not _same_amount(amount, milestone, contract.currency):
                edits.setdefault(number, {})["amount"] = amount
        elif field == "due_date":
            due_date = _date(values, block_id)
            if due_date and due_date != milestone.due_date:
                edits.setdefault(number, {})["due_date"] = due_date
        elif field == "description":
            description = _text(values, block_id)
            if description != (milestone.description or "").strip():
                edits.setdefault(number, {})["description"] = description
    changes: list[ChangeInput] = []
    for number in sorted(set(edits) | set(deletes)):
        if number in deletes:
            changes.append(MilestoneDeletion(number))
        else:
            changes.append(MilestoneEdit(number, **edits[number]))
    errors: dict[str, str] = {}
    slot = 1
    while slot == 1 or F.new_block(slot, "title") in values:
        new_title = _text(values, F.new_block(slot, "title"))
        new_amount = _text(values, F.new_block(slot, "amount"))
        new_due = _date(values, F.new_block(slot, "due_date"))
        new_description = _text(values, F.new_block(slot, "description"))
        if new_title or new_amount or new_due or new_description:
            found: dict[str, str] = {}
            if not new_title:
                found[F.new_block(slot, "title")] = "Give the new milestone a title."
            if not new_amount:
                found[F.new_block(slot, "amount")] = "Give the new milestone an amount."
            if new_due is None:
                found[F.new_block(slot, "due_date")] = "Pick a due date for the new milestone."
            errors.update(found)
            if not found and new_due is not None:
                changes.append(NewMilestone(new_title, new_amount, new_due, new_description))
        slot += 1
    if not changes and not errors:
        errors[F.NEW_TITLE] = "Nothing changed: edit a milestone above or add a new one."
    return {"changes": changes, "message": _text(values, F.MESSAGE), "errors": errors}


# --------------------------------------------------------------------------------------
# Decline a request, request changes to submitted work


def build_decline_modal(ctx: ModalContext, request: ChangeRequest) -> View:
    blocks: list[Block] = [
        section(request_summary(request, limit=2900)),
        _text_input(
            F.REASON,
            "Reason",
            max_length=MAX_TEXT,
            multiline=True,
            optional=True,
            placeholder="e.g. The budget is fixed",
            hint="Shown on the request in the channel.",
        ),
    ]
    return _modal(
        ViewId.DECLINE, f"Decline request #{request.number}", ctx, blocks, submit="Decline"
    )


def read_decline(values: Values) -> DeclineForm:
    return {"reason": _text(values, F.REASON)}


def build_request_changes_modal(ctx: ModalContext, milestone: Milestone) -> View:
    blocks: list[Block] = [
        section(
            f"Send milestone {milestone_name(milestone)} back for changes. The automatic "
            "release stops; the next submission starts a new review period."
        ),
        _text_input(
            F.NOTE,
            "What needs to change?",
            max_length=MAX_TEXT,
            multiline=True,
            placeholder="e.g. Please make the logo bigger",
        ),
    ]
    return _modal(ViewId.REQUEST_CHANGES, "Request changes", ctx, blocks, submit="Send")


def read_request_changes(values: Values) -> RequestChangesForm:
    return {"note": _text(values, F.NOTE)}


# --------------------------------------------------------------------------------------
# Reading state values


def _state(values: Values, block_id: str) -> Mapping[str, Any]:
    block = values.get(block_id) or {}
    state = block.get(block_id)
    if state is None and block:
        state = next(iter(block.values()))
    return state or {}


def _text(values: Values, block_id: str) -> str:
    value = _state(values, block_id).get("value")
    return value.strip() if isinstance(value, str) else ""


def _date(values: Values, block_id: str) -> date | None:
    value = _state(values, block_id).get("selected_date")
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _user(values: Values, block_id: str) -> str | None:
    value = _state(values, block_id).get("selected_user")
    return value if isinstance(value, str) and value else None


def _users(values: Values, block_id: str) -> list[str]:
    value = _state(values, block_id).get("selected_users")
    if not isinstance(value, list):
        return []
    seen: list[str] = []
    for item in value:
        if isinstance(item, str) and item and item not in seen:
            seen.append(item)
    return seen


def _option(values: Values, block_id: str) -> str | None:
    option = _state(values, block_id).get("selected_option")
    if isinstance(option, Mapping) and isinstance(option.get("value"), str):
        return str(option["value"])
    return None


def _options(values: Values, block_id: str) -> list[str]:
    options = _state(values, block_id).get("selected_options")
    if not isinstance(options, list):
        return []
    return [
        str(o["value"])
        for o in options
        if isinstance(o, Mapping) and isinstance(o.get("value"), str)
    ]
