"""Button clicks on cards and App Home: one service, committed before the ack; then the
cards and the clicker's answer are delivered (handlers.flow.perform).

Button values carry ids only (handlers.payloads); the services re-read every fact
under a lock and refuse a wrong person, a stale card or a second click with a clear
message, which the one error handler shows to the clicker alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from domain import disputes, queries, rules, services
from domain.errors import NotAParty
from domain.policy import Policy
from domain.rules import Act
from domain.services import Outcome
from handlers import commands
from handlers.blocks import counter, modals
from handlers.blocks.ending import build_dispute_modal
from handlers.blocks.paying import build_pay_link
from handlers.deps import deps_of
from handlers.errors import guarded, tell
from handlers.flow import perform
from handlers.ids import Action
from handlers.payloads import (
    ContractPick,
    ContractRef,
    MilestoneRef,
    ModalContext,
    ProposalRef,
    RequestRef,
)


def register(app: App) -> None:
    for action in BUTTON_SERVICES:
        app.action(action.value)(guarded(press_button))
    app.action(Action.DECLINE.value)(guarded(open_decline))
    app.action(Action.REQUEST_CHANGES.value)(guarded(open_request_changes))
    app.action(Action.PROPOSE.value)(guarded(open_propose))
    app.action(Action.COUNTER.value)(guarded(open_counter))
    app.action(Action.REVISE.value)(guarded(open_revise))
    app.action(Action.ADD_MILESTONE.value)(guarded(open_add))
    app.action(Action.CHOOSE_CONTRACT.value)(guarded(choose_contract))
    app.action(Action.DISPUTE.value)(guarded(open_dispute))
    for link in (Action.PAY_LINK, Action.PAYOUTS_LINK):
        app.action(link.value)(guarded(open_link))


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value", ""))


def _user(body: dict[str, Any]) -> str:
    return str(body["user"]["id"])


def _channel(body: dict[str, Any]) -> str:
    channel = body.get("channel") or {}
    return str(channel.get("id") or body.get("container", {}).get("channel_id") or "")


# Buttons that call one service: (session, button value, clicker, now, the configured
# policy) -> outcome. The policy reaches the services that take one: paying through the
# provider (Fund), the ending window, the nudge to fund the next milestone after a split.
ButtonService = Callable[[Session, str, str, datetime, Policy], Outcome]


def _agree(s: Session, value: str, user: str, now: datetime, policy: Policy) -> Outcome:
    ref = ContractRef.load(value)
    return services.agree_to_terms(s, contract_id=ref.contract_id, actor_id=user, now=now)


def _on_milestone(service: Callable[..., Outcome], *, with_policy: bool = False) -> ButtonService:
    """A button whose value names a milestone, calling `service` for the clicker (with
    `with_policy`, passing the configured policy too)."""

    def call(s: Session, value: str, user: str, now: datetime, policy: Policy) -> Outcome:
        ref = MilestoneRef.load(value)
        settings: dict[str, Policy] = {"policy": policy} if with_policy else {}
        return service(
            s,
            contract_id=ref.contract_id,
            milestone_id=ref.milestone_id,
            actor_id=user,
            now=now,
            **settings,
        )

    return call


def _on_request(service: Callable[..., Outcome], *, with_policy: bool = False) -> ButtonService:
    """A button whose value names a change request, calling `service` for the clicker
    (with `with_policy`, passing the configured policy too)."""

    def call(s: Session, value: str, user: str, now: datetime, policy: Policy) -> Outcome:
        ref = RequestRef.load(value)
        settings: dict[str, Policy] = {"policy": policy} if with_policy else {}
        return service(
            s,
            contract_id=ref.contract_id,
            request_id=ref.request_id,
            actor_id=user,
            now=now,
            **settings,
        )

    return call


def _end_contract(s: Session, value: str, user: str, now: datetime, policy: Policy) -> Outcome:
    ref = ContractRef.load(value)
    return services.end_contract(
        s, contract_id=ref.contract_id, actor_id=user, now=now, policy=policy
    )


def _accept_refund(s: Session, value: str, user: str, now: datetime, policy: Policy) -> Outcome:
    ref = ContractRef.load(value)
    return services.accept_refund(
        s, contract_id=ref.contract_id, actor_id=user, now=now, policy=policy
    )


def _agree_to_split(s: Session, value: str, user: str, now: datetime, policy: Policy) -> Outcome:
    ref = ProposalRef.load(value)
    return services.agree_to_split(
        s,
        contract_id=ref.contract_id,
        dispute_id=ref.dispute_id,
        proposal_number=ref.proposal,
        actor_id=user,
        now=now,
        policy=policy,
    )


BUTTON_SERVICES: dict[Action, ButtonService] = {
    Action.AGREE: _agree,
    Action.FUND: _on_milestone(services.fund_milestone, with_policy=True),
    Action.APPROVE: _on_milestone(services.approve_work, with_policy=True),
    Action.ACCEPT: _on_request(services.accept_request, with_policy=True),
    Action.WITHDRAW: _on_request(services.withdraw_request),
    Action.GIVE_MORE_TIME: _on_milestone(services.give_more_time, with_policy=True),
    Action.KEEP_REVIEW_DATE: _on_milestone(services.keep_review_date),
    Action.END_CONTRACT: _end_contract,
    Action.ACCEPT_REFUND: _accept_refund,
    Action.AGREE_TO_SPLIT: _agree_to_split,
}


def press_button(
    ack: Ack, body: dict[str, Any], context: BoltContext, respond: Respond, client: WebClient
) -> None:
    """One click, one confirmation: a button on a card in the channel is answered by the
    card itself, updated in place (and the channel's one announcement); a click
    elsewhere (App Home) is answered with a notice. A click that changes nothing (it was
    done already) is told so, since the card can't show it. A fund through the payments
    provider is answered, to the clicker alone, with their pay link."""
    deps = deps_of(context)
    service = BUTTON_SERVICES[Action(body["actions"][0]["action_id"])]
    outcome = perform(
        ack,
        body,
        deps,
        lambda session: service(session, _value(body), _user(body), deps.now(), deps.policy),
        reply_to=None,
        tell=lambda text: tell(client, respond, body, text),
    )
    if outcome is not None and outcome.pay_token is not None:
        link = build_pay_link(outcome.said, public_url=deps.public_url, token=outcome.pay_token)
        tell(client, respond, body, link)
    elif outcome is not None and (outcome.already_done or not _on_a_card(body)):
        tell(client, respond, body, outcome.said)


def open_link(ack: Ack) -> None:
    """A URL button (Pay with Stripe, Set up payouts): Slack opens the link in the
    browser and still sends the click, which only needs its ack."""
    ack()


def _on_a_card(body: dict[str, Any]) -> bool:
    """The button is on a card in the channel (which the delivery updates in place)."""
    container = body.get("container") or {}
    return container.get("type") == "message" and not container.get("is_ephemeral")


# --- buttons that open a modal: check who may act first, so nobody fills in a form
# --- only to be refused at the end.


def open_decline(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    deps, ref = deps_of(context), RequestRef.load(_value(body))
    with deps.sessions() as session, session.begin():
        contract, request = queries.decidable_request(
            session, contract_id=ref.contract_id, request_id=ref.request_id, actor_id=_user(body)
        )
        view = modals.build_decline_modal(
            ModalContext(channel_id=_channel(body), contract_id=contract.id, request_id=request.id),
            request,
        )
    ack()
    client.views_open(trigger_id=body["trigger_id"], view=view.to_dict())


def open_request_changes(
    ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient
) -> None:
    deps, ref = deps_of(context), MilestoneRef.load(_value(body))
    with deps.sessions() as session, session.begin():
        contract, milestone = queries.reviewable_milestone(
            session,
            contract_id=ref.contract_id,
            milestone_id=ref.milestone_id,
            actor_id=_user(body),
        )
        view = modals.build_request_changes_modal(
            ModalContext(
                channel_id=_channel(body), contract_id=contract.id, milestone_id=milestone.id
            ),
            milestone,
        )
    ack()
    client.views_open(trigger_id=body["trigger_id"], view=view.to_dict())


def open_dispute(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    """Dispute (work card, ending notice): the form for the reason, checked up front."""
    deps, ref = deps_of(context), MilestoneRef.load(_value(body))
    with deps.sessions() as session, session.begin():
        contract, milestone = disputes.disputable_milestone(
            session,
            contract_id=ref.contract_id,
            milestone_id=ref.milestone_id,
            actor_id=_user(body),
        )
        view = build_dispute_modal(
            ModalContext(
                channel_id=_channel(body) or contract.channel_id,
                contract_id=contract.id,
                milestone_id=milestone.id,
            ),
            contract,
            milestone,
        )
    ack()
    client.views_open(trigger_id=body["trigger_id"], view=view.to_dict())


def open_propose(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    deps, ref = deps_of(context), ContractRef.load(_value(body))
    with deps.sessions() as session, session.begin():
        contract = queries.load_contract(session, ref.contract_id)
        direct = rules.changes_apply_directly(contract, _user(body))
        rules.require(contract, _user(body), Act.EDIT_DIRECTLY if direct else Act.PROPOSE)
        view = modals.build_propose_changes_modal(
            ModalContext(channel_id=_channel(body) or contract.channel_id, contract_id=contract.id),
            contract,
            direct=direct,
        )
    ack()
    client.views_open(trigger_id=body["trigger_id"], view=view.to_dict())


def open_counter(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    """Suggest changes: the answering side's counter-offer, in the form prefilled."""
    _open_replacing(ack, body, context, client, Act.COUNTER, "suggest changes to")


def open_revise(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    """Revise: the proposing side's own pending request, in the form prefilled."""
    _open_replacing(ack, body, context, client, Act.WITHDRAW, "revise")


def _open_replacing(
    ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient, act: Act, doing: str
) -> None:
    deps, ref = deps_of(context), RequestRef.load(_value(body))
    build = counter.build_counter_modal if act == Act.COUNTER else counter.build_revise_modal
    with deps.sessions() as session, session.begin():
        contract, request = queries.decidable_request(
            session,
            contract_id=ref.contract_id,
            request_id=ref.request_id,
            actor_id=_user(body),
            act=act,
            doing=doing,
        )
        view = build(
            ModalContext(
                channel_id=_channel(body) or contract.channel_id,
                contract_id=contract.id,
                request_id=request.id,
            ),
            contract,
            request,
        )
    ack()
    client.views_open(trigger_id=body["trigger_id"], view=view.to_dict())


def open_add(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    deps, ref = deps_of(context), ContractRef.load(_value(body))
    with deps.sessions() as session, session.begin():
        contract = queries.load_contract(session, ref.contract_id)
        rules.require(contract, _user(body), Act.EDIT_NEGOTIATING)
        view = modals.build_add_milestone_modal(
            ModalContext(channel_id=_channel(body) or contract.channel_id, contract_id=contract.id),
            contract,
        )
    ack()
    client.views_open(trigger_id=body["trigger_id"], view=view.to_dict())


def choose_contract(
    ack: Ack, body: dict[str, Any], context: BoltContext, respond: Respond, client: WebClient
) -> None:
    """A contract chosen for a command typed without `contract=` (handlers.commands
    offers the choice): the same text runs again with `contract=`, as a command of the
    person who chose, through the command's own path — parsed and checked anew. Only
    the person who typed it may choose."""
    pick = ContractPick.load(_value(body))
    if pick.user_id != _user(body):
        raise NotAParty("That choice was offered to someone else: type the command yourself.")
    command: dict[str, Any] = {
        "command": commands.COMMAND,
        "text": f"contract={pick.contract_id} {pick.text}",
        "user_id": _user(body),
        "team_id": str((body.get("team") or {}).get("id") or ""),
        "channel_id": _channel(body),
        "trigger_id": str(body.get("trigger_id") or ""),
    }
    if body.get("response_url"):
        command["response_url"] = body["response_url"]
    commands.run_command(ack, command, context, respond, client)
