"""Modal submissions. A refusal travels in the ack (`response_action: errors`, shown
next to the field), so these listeners call the domain *before* they ack, like every
listener that changes something (handlers.flow); nothing is saved until the form is
valid.

Amounts are read in the person's locale, as the command reads them
(handlers.people.plain_amount): `1.500,00` from a `de-DE` person is fifteen hundred, and
a number that reads two ways is refused next to its input. That needs their profile:
the one Slack call before the ack, made only for an amount with separators and cached
per app (`Deps.profiles`, shared with the command). Every other Slack call happens only
after the ack."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from domain import queries, services
from domain.errors import InvalidInput
from domain.money import to_major_str
from domain.services import Agency, ChangeInput, MilestoneEdit, NewMilestone, Outcome
from handlers.blocks import fields, modals
from handlers.blocks.ending import read_dispute
from handlers.deps import Deps, deps_of
from handlers.errors import guarded
from handlers.facts import team_ids_of
from handlers.flow import perform
from handlers.ids import View
from handlers.payloads import ModalContext
from handlers.people import plain_amount
from handlers.replies import ephemeral_address


def register(app: App) -> None:
    app.view(View.NEW_CONTRACT.value)(guarded(submit_new_contract))
    app.view(View.ADD_MILESTONE.value)(guarded(submit_add_milestone))
    app.view(View.EDIT_MILESTONE.value)(guarded(submit_edit_milestone))
    app.view(View.PROPOSE.value)(guarded(submit_propose_changes))
    app.view(View.COUNTER.value)(guarded(submit_counter))
    app.view(View.REVISE.value)(guarded(submit_revise))
    app.view(View.DECLINE.value)(guarded(submit_decline))
    app.view(View.REQUEST_CHANGES.value)(guarded(submit_request_changes))
    app.view(View.DISPUTE.value)(guarded(submit_dispute))


def _values(view: dict[str, Any]) -> Any:
    return view.get("state", {}).get("values", {})


def _submit(
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    deps: Deps,
    service: Callable[[Session], Outcome],
    *,
    on_a_card: bool = False,
) -> Outcome | None:
    """Run the service, commit, and close the form (handlers.flow.perform); a refusal is
    acked as field errors by the error policy and nothing is saved. The person is told
    what happened in the channel the form was opened from, unless the form answers a
    card's button (`on_a_card`): then the card, updated in place, is the answer."""
    ctx = ModalContext.load(view.get("private_metadata"))
    reply_to = None if on_a_card else ephemeral_address(ctx.channel_id, str(body["user"]["id"]))
    return perform(ack, body, deps, service, reply_to=reply_to)


def _amount(
    deps: Deps,
    client: WebClient,
    body: dict[str, Any],
    text: str,
    currency: str,
    *,
    milestone: int | None = None,
) -> str:
    """An amount typed in the form, read in the person's locale (a refusal names the
    input of `milestone`'s amount, or of the new milestone's)."""
    user_id = str(body["user"]["id"])
    return plain_amount(
        text,
        currency,
        habits=lambda: deps.profiles.habits_of(client, user_id),
        max_major=deps.policy.max_amount_major,
        milestone=milestone,
    )


def _unchanged(amount: str, current_minor: int, currency: str) -> bool:
    """An amount that reads as the milestone's own (typed in the person's way)."""
    return amount == to_major_str(current_minor, currency)


def submit_new_contract(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    deps, ctx = deps_of(context), ModalContext.load(view.get("private_metadata"))
    form = modals.read_new_contract(_values(view))
    shape_errors = modals.new_contract_errors(form)
    if shape_errors:
        ack(response_action="errors", errors=shape_errors)
        return
    user = body["user"]
    client_id = form["client_id"]
    assert client_id is not None  # new_contract_errors checked it
    outcome = _submit(
        ack,
        body,
        view,
        deps,
        lambda s: services.create_contract(
            s,
            title=form["title"],
            team_id=user.get("team_id") or body.get("team", {}).get("id", ""),
            channel_id=ctx.channel_id,
            creator_id=user["id"],
            client_id=client_id,
            freelancer_id=form["freelancer_id"],
            agency=(
                Agency(form["agency_name"], form["manager_ids"], form["member_ids"])
                if form["agency_name"] is not None
                else None
            ),
            currency=form["currency"],
            now=deps.now(),
        ),
    )
    if outcome is None:
        return
    parties = [client_id, form["freelancer_id"] or "", *form["manager_ids"], *form["member_ids"]]
    try:
        for party, team in team_ids_of(client, [p for p in parties if p]).items():
            with deps.sessions() as session:
                services.record_team(
                    session, contract_id=outcome.contract_id, user_id=party, team_id=team
                )
    except (InvalidInput, SlackApiError):
        pass  # the contract stands; the workspace is recorded when known


def submit_add_milestone(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    deps, ctx = deps_of(context), ModalContext.load(view.get("private_metadata"))
    form = modals.read_add_milestone(_values(view))
    if form["due_date"] is None:
        ack(response_action="errors", errors={fields.DUE_DATE: "Pick a due date."})
        return
    contract_id = _contract(ctx)
    with deps.sessions() as session, session.begin():
        currency = queries.load_contract(session, contract_id).currency
    amount = _amount(deps, client, body, form["amount"], currency)
    change = NewMilestone(form["title"], amount, form["due_date"], form["description"])
    _submit(
        ack,
        body,
        view,
        deps,
        lambda s: services.change_milestones(
            s,
            contract_id=contract_id,
            actor_id=body["user"]["id"],
            changes=[change],
            message=form["message"],
            now=deps.now(),
            policy=deps.policy,
        ),
    )


def submit_edit_milestone(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    deps, ctx = deps_of(context), ModalContext.load(view.get("private_metadata"))
    contract_id, number = _contract(ctx), ctx.milestone_number
    with deps.sessions() as session, session.begin():
        contract = queries.load_contract(session, contract_id)
        milestone = contract.milestone(number or 0)
        if milestone is None:
            ack(response_action="errors", errors={fields.TITLE: "That milestone is gone."})
            return
        form = modals.read_edit_milestone(_values(view), milestone, currency=contract.currency)
        currency, current = contract.currency, milestone.amount_minor
    amount = form["amount"]
    if amount is not None:
        amount = _amount(deps, client, body, amount, currency, milestone=milestone.number)
        if _unchanged(amount, current, currency):
            amount = None
    change = MilestoneEdit(
        milestone.number,
        title=form["title"],
        description=form["description"],
        amount=amount,
        due_date=form["due_date"],
    )
    _submit(
        ack,
        body,
        view,
        deps,
        lambda s: services.change_milestones(
            s,
            contract_id=contract_id,
            actor_id=body["user"]["id"],
            changes=[change],
            message=form["message"],
            now=deps.now(),
            policy=deps.policy,
        ),
    )


def submit_propose_changes(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    deps, ctx = deps_of(context), ModalContext.load(view.get("private_metadata"))
    contract_id = _contract(ctx)
    read = _changes_in_form(ack, body, view, deps, client, contract_id)
    if read is None:
        return
    changes, message = read
    _submit(
        ack,
        body,
        view,
        deps,
        lambda s: services.change_milestones(
            s,
            contract_id=contract_id,
            actor_id=body["user"]["id"],
            changes=changes,
            message=message,
            now=deps.now(),
            policy=deps.policy,
        ),
    )


def submit_counter(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    """Suggest changes: the form, prefilled with the request, sent as a counter-offer."""
    _submit_replacing(ack, body, view, context, client, services.counter_request)


def submit_revise(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    """Revise: the proposer's own request, replaced in one step."""
    _submit_replacing(ack, body, view, context, client, services.revise_request)


def _submit_replacing(
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    context: BoltContext,
    client: WebClient,
    service: Callable[..., Outcome],
) -> None:
    deps, ctx = deps_of(context), ModalContext.load(view.get("private_metadata"))
    contract_id, request_id = _contract(ctx), _request(ctx)
    read = _changes_in_form(ack, body, view, deps, client, contract_id)
    if read is None:
        return
    changes, message = read
    _submit(
        ack,
        body,
        view,
        deps,
        lambda s: service(
            s,
            contract_id=contract_id,
            request_id=request_id,
            actor_id=body["user"]["id"],
            changes=changes,
            message=message,
            now=deps.now(),
            policy=deps.policy,
        ),
    )


def _changes_in_form(
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    deps: Deps,
    client: WebClient,
    contract_id: int,
) -> tuple[list[ChangeInput], str] | None:
    """The changes and the message of a propose-changes form (or a counter-offer, or a
    revision), read against the contract as it is now; None when the form was acked
    with field errors instead."""
    with deps.sessions() as session, session.begin():
        contract = queries.load_contract(session, contract_id)
        form = modals.read_propose_changes(_values(view), contract)
        currency = contract.currency
        amounts = {m.number: m.amount_minor for m in contract.milestones}
    if form["errors"]:
        ack(response_action="errors", errors=form["errors"])
        return None
    changes = _amounts_read(
        form["changes"],
        lambda text, number: _amount(deps, client, body, text, currency, milestone=number),
        unchanged=lambda amount, number: _unchanged(amount, amounts[number], currency),
    )
    if not changes:  # only amounts retyped the person's way, as they were
        nothing = "Nothing changed: edit a milestone above or add a new one."
        ack(response_action="errors", errors={fields.NEW_TITLE: nothing})
        return None
    return changes, form["message"]


def submit_decline(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    deps, ctx = deps_of(context), ModalContext.load(view.get("private_metadata"))
    form = modals.read_decline(_values(view))
    _submit(
        ack,
        body,
        view,
        deps,
        lambda s: services.decline_request(
            s,
            contract_id=_contract(ctx),
            request_id=ctx.request_id,
            actor_id=body["user"]["id"],
            reason=form["reason"],
            now=deps.now(),
        ),
        on_a_card=True,
    )


def submit_request_changes(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    deps, ctx = deps_of(context), ModalContext.load(view.get("private_metadata"))
    form = modals.read_request_changes(_values(view))
    _submit(
        ack,
        body,
        view,
        deps,
        lambda s: services.request_changes(
            s,
            contract_id=_contract(ctx),
            milestone_id=ctx.milestone_id,
            actor_id=body["user"]["id"],
            note=form["note"],
            now=deps.now(),
        ),
        on_a_card=True,
    )


def submit_dispute(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    """The reason for a dispute (work card, ending notice): the card is the answer."""
    deps, ctx = deps_of(context), ModalContext.load(view.get("private_metadata"))
    form = read_dispute(_values(view))
    _submit(
        ack,
        body,
        view,
        deps,
        lambda s: services.dispute_milestone(
            s,
            contract_id=_contract(ctx),
            milestone_id=ctx.milestone_id,
            actor_id=body["user"]["id"],
            reason=form["reason"],
            now=deps.now(),
            policy=deps.policy,
        ),
        on_a_card=True,
    )


def _amounts_read(
    changes: Sequence[ChangeInput],
    read: Callable[[str, int | None], str],
    *,
    unchanged: Callable[[str, int], bool],
) -> list[ChangeInput]:
    """The changes with their amounts read (`read(text, milestone number or None)`); an
    edited amount that reads as the milestone's own is no change, nor an edit left with
    nothing to change."""
    read_changes: list[ChangeInput] = []
    for change in changes:
        if isinstance(change, NewMilestone):
            change = replace(change, amount=read(change.amount, None))
        elif isinstance(change, MilestoneEdit) and change.amount is not None:
            amount = read(change.amount, change.number)
            change = replace(change, amount=None if unchanged(amount, change.number) else amount)
            if change == MilestoneEdit(change.number):
                continue
        read_changes.append(change)
    return read_changes


def _contract(ctx: ModalContext) -> int:
    if ctx.contract_id is None:
        raise InvalidInput("That form is out of date; run the command again.")
    return ctx.contract_id


def _request(ctx: ModalContext) -> int:
    if ctx.request_id is None:
        raise InvalidInput("That form is out of date; run the command again.")
    return ctx.request_id
