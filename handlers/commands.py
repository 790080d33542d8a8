"""`/milestone …`: parse the text, call one domain service, answer the person.

A command that changes something is committed before it is acked (handlers.flow); its
answer is delivered from the outbox right after the ack, through `respond`
(ephemeral). A command that only shows something (help, status, history) or opens a
form is acked at once and answers afterwards. Errors are raised, and the one error
policy (handlers.errors) turns them into a message for the person who typed the
command.

Due dates and amounts are read in the person's own habits before the service is called:
`next friday` in their Slack time zone (domain.when), `1.500,00` in their Slack locale
(domain.money, through handlers.people.plain_amount, as the forms do), and handed to
the domain as a date and a plain amount. Their profile (users.info, cached per app in
`Deps.profiles`, shared with the forms) is asked for only when the input needs it: a
date in words, or an amount with separators.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from domain import notify, queries, rules, services, snapshot, when
from domain.disputes import is_zero_amount
from domain.errors import ContractChoice, InvalidInput
from domain.model import Notify
from domain.payments import PAYOUTS_NOTE
from domain.services import (
    Agency,
    MilestoneDeletion,
    MilestoneEdit,
    NewMilestone,
    Outcome,
    payments,
)
from domain.text import Command, said
from domain.waiting import waiting_in
from handlers import blocks, grammar
from handlers.blocks import modals
from handlers.blocks.direct import build_notify_answer
from handlers.blocks.ending import build_end_confirmation
from handlers.blocks.finding import MAX_LISTED, build_contract_choice, build_contract_list
from handlers.blocks.message import Message
from handlers.blocks.paying import build_pay_link, build_payouts
from handlers.deps import Deps, deps_of
from handlers.errors import guarded, tell
from handlers.facts import require_bot_in_channel, team_ids_of
from handlers.flow import perform
from handlers.payloads import ModalContext
from handlers.people import Habits, plain_amount
from handlers.replies import reply_address

COMMAND = "/milestone"
_YEAR_FIRST = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ADD_EXAMPLE = 'add "Design" 1500 next friday "Wireframes"'
_EDIT_EXAMPLE = 'edit 2 due="next friday" message="..."'


def register(app: App) -> None:
    app.command(COMMAND)(guarded(run_command))


def run_command(
    ack: Ack, command: dict[str, Any], context: BoltContext, respond: Respond, client: WebClient
) -> None:
    """`/milestone …`; in a channel with several open contracts where the text doesn't
    say which, and the person is a party to several of them (or to none), the answer
    offers them as buttons that run the same text on the one chosen
    (handlers.actions.choose_contract)."""
    try:
        handle_milestone_command(ack, command, context, respond, client)
    except ContractChoice as choice:
        offer_contract_choice(ack, command, context, respond, choice)


def offer_contract_choice(
    ack: Ack,
    command: dict[str, Any],
    context: BoltContext,
    respond: Respond,
    choice: ContractChoice,
) -> None:
    if ack.response is None:
        ack()
    deps = deps_of(context)
    with deps.sessions() as session, session.begin():
        found = queries.load_contracts(session, choice.choices)
        message = build_contract_choice(
            str(command.get("text", "")).strip(),
            str(command["user_id"]),
            [found[i] for i in choice.choices if i in found],
        )
    respond(**message.as_kwargs(), response_type="ephemeral", replace_original=False)


@dataclass(frozen=True)
class Invocation:
    """One slash command: who typed what, where."""

    deps: Deps
    ack: Ack
    body: dict[str, Any]
    user_id: str
    team_id: str
    channel_id: str
    trigger_id: str
    respond: Respond
    client: WebClient
    started: float

    def habits(self) -> Habits:
        """The person's time zone and locale (a Slack lookup, cached per app)."""
        return self.deps.profiles.habits_of(self.client, self.user_id)


def handle_milestone_command(
    ack: Ack, command: dict[str, Any], context: BoltContext, respond: Respond, client: WebClient
) -> None:
    started = time.monotonic()
    deps = deps_of(context)
    parsed = grammar.parse(command.get("text", ""), today=deps.now().date())
    call = Invocation(
        deps=deps,
        ack=ack,
        body=command,
        user_id=command["user_id"],
        team_id=command.get("team_id", ""),
        channel_id=command["channel_id"],
        trigger_id=command.get("trigger_id", ""),
        respond=respond,
        client=client,
        started=started,
    )
    match parsed:
        case grammar.ShowHelp():
            show_help(call, parsed)
        case grammar.NewModal():
            open_new_contract(call, parsed)
        case grammar.NewContract():
            new_contract(call, parsed)
        case grammar.AddModal():
            open_add_milestone(call, parsed)
        case grammar.AddMilestone():
            add_milestone(call, parsed)
        case grammar.EditModal():
            open_edit(call, parsed)
        case grammar.EditMilestone():
            edit_milestone(call, parsed)
        case grammar.DeleteMilestone():
            delete_milestone(call, parsed)
        case grammar.ShowStatus():
            show_status(call, parsed)
        case grammar.ShowHistory():
            show_history(call, parsed)
        case grammar.ShowList():
            show_list(call, parsed)
        case grammar.EndContract():
            confirm_end(call, parsed)
        case grammar.SettleDispute():
            settle_dispute(call, parsed)
        case grammar.ChooseNotifications():
            choose_notifications(call, parsed)
        case grammar.ReleasePart():
            release_part(call, parsed)
        case grammar.PayBonus():
            pay_bonus(call, parsed)
        case grammar.ShowPayouts():
            show_payouts(call, parsed)
        case grammar.FundMilestone():
            fund_milestone(call, parsed)
        case _:
            contract_service(call, parsed)


# --- helpers ----------------------------------------------------------------------------


def _contract_id(call: Invocation, cmd: grammar.Command) -> int:
    return _contract(call, cmd)[0]


def _contract(call: Invocation, cmd: grammar.Command) -> tuple[int, str]:
    """The id and currency of the contract the command means."""
    with call.deps.sessions() as session, session.begin():
        contract = queries.resolve_contract(
            session,
            channel_id=call.channel_id,
            contract_id=cmd.contract_id,
            user_id=call.user_id,
        )
        return contract.id, contract.currency


def _due_date(call: Invocation, due: grammar.Due, *, example: str) -> date:
    """The day the person means, in their calendar (domain.when). A date written with
    the year first and at least two days ahead is the same day everywhere on Earth, so
    it needs no lookup. A date of several unquoted words that can't be read may have
    taken in words meant otherwise: the refusal then shows `example` (a command)."""
    utc_today = call.deps.now().date()
    if _YEAR_FIRST.fullmatch(due.text):
        try:
            day = date.fromisoformat(due.text)
        except ValueError:  # not on the calendar anywhere: refused without a lookup
            return when.read_due(due.text, today=utc_today)
        if utc_today + timedelta(days=2) <= day:
            return when.read_due(due.text, today=utc_today)
    habits = call.habits()
    today = when.today_in(call.deps.now(), habits.time_zone)
    try:
        return when.read_due(due.text, today=today, locale=habits.locale)
    except InvalidInput as refusal:
        if not due.loose:
            raise
        raise InvalidInput(
            said(
                refusal.said,
                " If not all those words are the date, use quotes: ",
                Command(example),
                ".",
            ),
            field=refusal.field,
        ) from None


def _amount(call: Invocation, currency: str, text: str) -> str:
    """The amount in the domain's plain form, read in the person's locale."""
    return plain_amount(
        text, currency, habits=call.habits, max_major=call.deps.policy.max_amount_major
    )


def _run(call: Invocation, service: Callable[[Session], Outcome]) -> None:
    """Run one service, commit, ack; its answer and cards are delivered after the ack."""
    perform(
        call.ack,
        call.body,
        call.deps,
        service,
        reply_to=reply_address(call.body),
        started=call.started,
        tell=lambda text: tell(call.client, call.respond, call.body, text),
    )


def _record_only(call: Invocation) -> bool:
    """`PAYMENTS=ledger`: what is shown says the bot keeps the record only."""
    return not call.deps.policy.pay_through_provider


def _answer(call: Invocation, message: Message) -> None:
    call.respond(**message.as_kwargs(), response_type="ephemeral", replace_original=False)


def _open_modal(call: Invocation, view: Any) -> None:
    call.ack()
    call.client.views_open(trigger_id=call.trigger_id, view=view.to_dict())


# --- one function per subcommand --------------------------------------------------------


def _require_bot_here(call: Invocation) -> None:
    """The bot (this workspace's, or in a Slack Connect channel another installed
    workspace's) is a member of the channel the command came from."""

    def elsewhere(channel_id: str) -> bool:
        return call.deps.delivery.bot_elsewhere(channel_id, team_id=call.team_id)

    require_bot_in_channel(call.client, call.channel_id, elsewhere=elsewhere)


def show_help(call: Invocation, cmd: grammar.ShowHelp) -> None:
    call.ack()
    _answer(call, blocks.build_help(today=call.deps.now().date(), record_only=_record_only(call)))


def open_new_contract(call: Invocation, cmd: grammar.NewModal) -> None:
    _require_bot_here(call)
    _open_modal(call, modals.build_new_contract_modal(ModalContext(channel_id=call.channel_id)))


def new_contract(call: Invocation, cmd: grammar.NewContract) -> None:
    _require_bot_here(call)
    parties = [cmd.client_id, *([cmd.freelancer_id] if cmd.freelancer_id else [])]
    parties += [*cmd.manager_ids, *cmd.member_ids]
    teams = team_ids_of(call.client, parties)
    _run(
        call,
        lambda session: services.create_contract(
            session,
            title=cmd.title,
            team_id=call.team_id,
            channel_id=call.channel_id,
            creator_id=call.user_id,
            client_id=cmd.client_id,
            freelancer_id=cmd.freelancer_id,
            agency=(
                Agency(cmd.agency_name, cmd.manager_ids, cmd.member_ids)
                if cmd.agency_name is not None
                else None
            ),
            currency=cmd.currency or "USD",
            now=call.deps.now(),
            team_ids=teams,
        ),
    )


def open_add_milestone(call: Invocation, cmd: grammar.AddModal) -> None:
    contract_id = _contract_id(call, cmd)
    with call.deps.sessions() as session, session.begin():
        contract = queries.load_contract(session, contract_id)
        view = modals.build_add_milestone_modal(
            ModalContext(channel_id=call.channel_id, contract_id=contract_id), contract
        )
    _open_modal(call, view)


def _change(
    call: Invocation,
    contract_id: int,
    change: services.ChangeInput,
    message: str | None,
) -> None:
    _run(
        call,
        lambda session: services.change_milestones(
            session,
            contract_id=contract_id,
            actor_id=call.user_id,
            changes=[change],
            message=message or "",
            now=call.deps.now(),
            policy=call.deps.policy,
        ),
    )


def add_milestone(call: Invocation, cmd: grammar.AddMilestone) -> None:
    contract_id, currency = _contract(call, cmd)
    amount = _amount(call, currency, cmd.amount)
    due_date = _due_date(call, cmd.due, example=_ADD_EXAMPLE)
    change = NewMilestone(cmd.title, amount, due_date, cmd.description)
    _change(call, contract_id, change, cmd.message)


def open_edit(call: Invocation, cmd: grammar.EditModal) -> None:
    contract_id = _contract_id(call, cmd)
    ctx = ModalContext(channel_id=call.channel_id, contract_id=contract_id)
    with call.deps.sessions() as session, session.begin():
        contract = queries.load_contract(session, contract_id)
        if cmd.number is None:
            direct = rules.changes_apply_directly(contract, call.user_id)
            view = modals.build_propose_changes_modal(ctx, contract, direct=direct)
        else:
            milestone = contract.milestone(cmd.number)
            if milestone is None:
                raise InvalidInput(f"Contract {contract_id} has no milestone {cmd.number}.")
            view = modals.build_edit_milestone_modal(
                ModalContext(
                    channel_id=call.channel_id,
                    contract_id=contract_id,
                    milestone_number=cmd.number,
                ),
                contract,
                milestone,
            )
    _open_modal(call, view)


def edit_milestone(call: Invocation, cmd: grammar.EditMilestone) -> None:
    contract_id, currency = _contract(call, cmd)
    change = MilestoneEdit(
        number=cmd.number,
        title=cmd.title,
        description=cmd.description,
        amount=None if cmd.amount is None else _amount(call, currency, cmd.amount),
        due_date=None if cmd.due is None else _due_date(call, cmd.due, example=_EDIT_EXAMPLE),
    )
    _change(call, contract_id, change, cmd.message)


def delete_milestone(call: Invocation, cmd: grammar.DeleteMilestone) -> None:
    _change(call, _contract_id(call, cmd), MilestoneDeletion(cmd.number), cmd.message)


def contract_service(call: Invocation, cmd: grammar.Command) -> None:
    """The subcommands that call one service on the channel's contract, as its actor."""
    contract_id = _contract_id(call, cmd)
    user, now, policy = call.user_id, call.deps.now(), call.deps.policy

    def service(s: Session) -> Outcome:
        match cmd:
            case grammar.StartContract():
                return services.agree_to_terms(s, contract_id=contract_id, actor_id=user, now=now)
            case grammar.SubmitWork(note=note):
                return services.submit_work(
                    s,
                    contract_id=contract_id,
                    actor_id=user,
                    note=note or "",
                    now=now,
                    policy=policy,
                )
            case grammar.ApproveWork():
                return services.approve_work(
                    s, contract_id=contract_id, actor_id=user, now=now, policy=policy
                )
            case grammar.RequestChanges(note=note):
                return services.request_changes(
                    s, contract_id=contract_id, actor_id=user, note=note, now=now
                )
            case grammar.AcceptRequest(request_number=number):
                return services.accept_request(
                    s,
                    contract_id=contract_id,
                    number=number,
                    actor_id=user,
                    now=now,
                    policy=policy,
                )
            case grammar.DeclineRequest(request_number=number, reason=reason):
                return services.decline_request(
                    s,
                    contract_id=contract_id,
                    number=number,
                    actor_id=user,
                    reason=reason or "",
                    now=now,
                )
            case grammar.WithdrawRequest(request_number=number):
                return services.withdraw_request(
                    s, contract_id=contract_id, number=number, actor_id=user, now=now
                )
            case grammar.DisputeMilestone(number=number, reason=reason):
                return services.dispute_milestone(
                    s,
                    contract_id=contract_id,
                    actor_id=user,
                    reason=reason,
                    milestone_number=number,
                    now=now,
                    policy=policy,
                )
            case grammar.ExtendReview(days=days):
                return services.extend_review(
                    s, contract_id=contract_id, actor_id=user, days=days, now=now, policy=policy
                )
        raise AssertionError(f"not a contract service: {cmd!r}")

    _run(call, service)


def fund_milestone(call: Invocation, cmd: grammar.FundMilestone) -> None:
    """`fund`: the next milestone in order. With `PAYMENTS=stripe` the client is asked
    to pay instead: their answer carries their own pay link as a button, so it is sent
    here, to them alone, rather than as the stored words of the outbox (which can't
    carry it). If it is lost on the way, `fund` again shows the same link."""
    contract_id = _contract_id(call, cmd)

    def fund(session: Session) -> Outcome:
        return services.fund_milestone(
            session,
            contract_id=contract_id,
            actor_id=call.user_id,
            now=call.deps.now(),
            policy=call.deps.policy,
        )

    if not call.deps.policy.pay_through_provider:
        _run(call, fund)
        return
    outcome = perform(
        call.ack,
        call.body,
        call.deps,
        fund,
        reply_to=None,
        started=call.started,
        tell=lambda text: tell(call.client, call.respond, call.body, text),
    )
    if outcome is None:
        return
    if outcome.pay_token is None:
        _answer(call, blocks.build_notice(outcome.said))
    else:
        _answer(
            call,
            build_pay_link(outcome.said, public_url=call.deps.public_url, token=outcome.pay_token),
        )


def confirm_end(call: Invocation, cmd: grammar.EndContract) -> None:
    """`end` never ends by itself: it answers with what ending does to the money and the
    *End contract* button (handlers.actions), which does it. A refusal (not a party,
    work waiting for review, a dispute) comes at once, before anyone clicks."""
    contract_id = _contract_id(call, cmd)
    with call.deps.sessions() as session, session.begin():
        preview = services.preview_end(
            session,
            contract_id=contract_id,
            actor_id=call.user_id,
            now=call.deps.now(),
            policy=call.deps.policy,
        )
    call.ack()
    _answer(call, build_end_confirmation(preview, record_only=_record_only(call)))


def settle_dispute(call: Invocation, cmd: grammar.SettleDispute) -> None:
    contract_id, currency = _contract(call, cmd)
    # Zero is a split too (everything back to the client): passed on as typed.
    amount = cmd.amount if is_zero_amount(cmd.amount) else _amount(call, currency, cmd.amount)
    _run(
        call,
        lambda session: services.propose_split(
            session,
            contract_id=contract_id,
            actor_id=call.user_id,
            milestone_number=cmd.number,
            to_provider=amount,
            now=call.deps.now(),
            policy=call.deps.policy,
        ),
    )


def release_part(call: Invocation, cmd: grammar.ReleasePart) -> None:
    contract_id, currency = _contract(call, cmd)
    amount = _amount(call, currency, cmd.amount)
    _run(
        call,
        lambda session: services.release_part(
            session,
            contract_id=contract_id,
            actor_id=call.user_id,
            number=cmd.number,
            amount=amount,
            now=call.deps.now(),
            policy=call.deps.policy,
        ),
    )


def pay_bonus(call: Invocation, cmd: grammar.PayBonus) -> None:
    contract_id, currency = _contract(call, cmd)
    amount = _amount(call, currency, cmd.amount)
    _run(
        call,
        lambda session: services.pay_bonus(
            session,
            contract_id=contract_id,
            actor_id=call.user_id,
            amount=amount,
            note=cmd.note or "",
            now=call.deps.now(),
            policy=call.deps.policy,
        ),
    )


def choose_notifications(call: Invocation, cmd: grammar.ChooseNotifications) -> None:
    """Where the person hears what needs them (domain.notify): saved before the ack."""
    if cmd.choice is None:
        call.ack()
        with call.deps.sessions() as session:
            current = notify.choice_of(session, call.user_id)
        _answer(call, build_notify_answer(current, changed=None))
        return
    with call.deps.sessions() as session:
        chosen = notify.choose(
            session,
            user_id=call.user_id,
            team_id=call.team_id or None,
            choice=Notify(cmd.choice),
            now=call.deps.now(),
        )
    call.ack()
    _answer(call, build_notify_answer(chosen.choice, changed=not chosen.already_done))


def show_status(call: Invocation, cmd: grammar.ShowStatus) -> None:
    contract_id = _contract_id(call, cmd)
    call.ack()
    with call.deps.sessions() as session, session.begin():
        message = blocks.build_status(
            snapshot.snapshot(session, contract_id),
            now=call.deps.now(),
            record_only=_record_only(call),
        )
    _answer(call, message)


def show_list(call: Invocation, cmd: grammar.ShowList) -> None:
    """My contracts, in every channel, open first, with what waits on each and for whom."""
    call.ack()
    with call.deps.sessions() as session, session.begin():
        contracts = queries.contracts_of_user(session, call.user_id, limit=MAX_LISTED)
        total = queries.count_contracts_of_users(session, [call.user_id])[call.user_id]
        waiting = waiting_in(session, contracts, now=call.deps.now())
        message = build_contract_list(
            call.user_id, contracts, waiting, total=total, now=call.deps.now()
        )
    _answer(call, message)


def show_payouts(call: Invocation, cmd: grammar.ShowPayouts) -> None:
    """Where the provider side is paid: with `PAYMENTS=ledger`, by the client directly;
    with `PAYMENTS=stripe`, into their payout account at Stripe, whose state is shown with
    their own link to set it up (a new one each time: Stripe's links work once)."""
    if not call.deps.policy.pay_through_provider:
        call.ack()
        _answer(call, blocks.build_notice(PAYOUTS_NOTE, emoji=":receipt:"))
        return
    with call.deps.sessions() as session:
        payouts = payments.payouts_link(
            session, user_id=call.user_id, team_id=call.team_id or None, now=call.deps.now()
        )
    call.ack()
    _answer(
        call,
        build_payouts(
            linked=payouts.linked,
            ready=payouts.ready,
            public_url=call.deps.public_url,
            token=payouts.token,
        ),
    )


def show_history(call: Invocation, cmd: grammar.ShowHistory) -> None:
    contract_id = _contract_id(call, cmd)
    call.ack()
    with call.deps.sessions() as session, session.begin():
        contract = queries.load_contract(session, contract_id)
        message = blocks.build_history(
            contract, queries.history(session, contract_id), now=call.deps.now()
        )
    _answer(call, message)
