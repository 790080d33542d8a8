"""The listeners, called directly with fakes: no HTTP, no bolt, no patching.

Each listener gets a recording `ack`, a recording `respond`, a small fake Slack
client and `context={"deps": Deps(...)}` on a real (migrated) SQLite database with a
fake delivery. One `Journal` records every call in order, so a test can say what
happened first; the ack also notes what the database held when it was called, so a
test can say that a change was committed before Slack was told it was received.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from domain import queries, services
from domain.db import make_engine, make_session_factory
from domain.model import ChangeRequest, Contract, Event, IntentKind, Milestone, OutboxMessage
from domain.policy import DEFAULT_POLICY
from domain.services import MilestoneEdit
from handlers import actions, commands, views
from handlers.blocks import fields, modals
from handlers.deps import Deps
from handlers.errors import guarded
from handlers.ids import Action, View
from handlers.payloads import ContractRef, MilestoneRef, ModalContext, RequestRef
from sandbox.emulator import build_state_values
from tests import factories as f

TRIGGER = "1111.2222.trigger"
RESPONSE_URL = "https://hooks.slack.test/commands/T0001/1/abc"


# --- fakes --------------------------------------------------------------------------------


@dataclass
class Call:
    who: str  # "ack", "respond", "slack", "deliver"
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    committed: list[str] = field(default_factory=list)  # event kinds in the database then


@dataclass
class Journal:
    calls: list[Call] = field(default_factory=list)

    def of(self, who: str) -> list[Call]:
        return [c for c in self.calls if c.who == who]

    def first(self) -> Call:
        assert self.calls, "nothing was called"
        return self.calls[0]

    def index(self, who: str) -> int:
        return next(i for i, c in enumerate(self.calls) if c.who == who)


class FakeAck:
    def __init__(self, journal: Journal, committed: Callable[[], list[str]]) -> None:
        self.journal = journal
        self.committed = committed
        self.calls: list[Call] = []
        self.response: object | None = None  # as bolt's Ack: set once acked

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.response = kwargs or True
        call = Call("ack", "ack", args, kwargs, committed=self.committed())
        self.calls.append(call)
        self.journal.calls.append(call)


class FakeRespond:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        self.journal.calls.append(Call("respond", "respond", (), kwargs))


class FakeSlack:
    """The few Web API methods the listeners use, answering like Slack; nothing else."""

    def __init__(self, journal: Journal, *, bot_is_member: bool = True) -> None:
        self.journal = journal
        self.bot_is_member = bot_is_member

    def _record(self, name: str, kwargs: dict[str, Any]) -> None:
        self.journal.calls.append(Call("slack", name, (), kwargs))

    def calls(self, name: str | None = None) -> list[Call]:
        return [c for c in self.journal.of("slack") if name is None or c.name == name]

    def views_open(self, **kwargs: Any) -> dict[str, Any]:
        self._record("views_open", kwargs)
        return {"ok": True, "view": {"id": "V0001", **kwargs["view"]}}

    def conversations_info(self, **kwargs: Any) -> dict[str, Any]:
        self._record("conversations_info", kwargs)
        channel = {"id": kwargs["channel"], "is_channel": True, "is_member": self.bot_is_member}
        return {"ok": True, "channel": channel}

    def users_info(self, **kwargs: Any) -> dict[str, Any]:
        self._record("users_info", kwargs)
        user = {"id": kwargs["user"], "team_id": f.TEAM, "is_bot": False, "deleted": False}
        return {"ok": True, "user": user}

    def chat_postEphemeral(self, **kwargs: Any) -> dict[str, Any]:  # noqa: N802 - Slack's name
        self._record("chat_postEphemeral", kwargs)
        return {"ok": True, "message_ts": "1700000000.000200"}


class FakeDelivery:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.delivered: list[list[int]] = []

    def deliver(self, ids: Sequence[int]) -> None:
        self.delivered.append(list(ids))
        self.journal.calls.append(Call("deliver", "deliver", (list(ids),)))

    def sweep(self, *, limit: int = 50) -> int:
        return 0

    def bot_elsewhere(self, channel_id: str, *, team_id: str) -> bool:
        return False  # one workspace: no other installation's bot


@dataclass
class World:
    """Everything a listener is called with, plus the database behind it."""

    sessions: sessionmaker[Session]
    journal: Journal
    ack: FakeAck
    respond: FakeRespond
    slack: FakeSlack
    delivery: FakeDelivery
    context: dict[str, Any]

    def session(self) -> Session:
        return self.sessions()

    def count(self, model: type[Any]) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def outbox_ids(self) -> set[int]:
        with self.sessions() as session:
            return set(session.scalars(select(OutboxMessage.id)))

    def event_kinds(self) -> list[str]:
        with self.sessions() as session:
            return list(session.scalars(select(Event.kind).order_by(Event.id)))

    def contract(self, contract_id: int) -> Contract:
        with self.sessions() as session, session.begin():
            return queries.load_contract(session, contract_id)

    def replies(self) -> list[OutboxMessage]:
        """The answers to the person, as the outbox holds them (in order)."""
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.kind == IntentKind.REPLY)
                    .order_by(OutboxMessage.id)
                )
            )

    # --- calling listeners as bolt would ----------------------------------------------

    def run(self, listener: Callable[..., None], body: dict[str, Any], **extra: Any) -> None:
        """As bolt runs a registered listener: through the one error policy."""
        args = SimpleNamespace(
            ack=self.ack,
            body=body,
            context=self.context,
            respond=self.respond,
            client=self.slack,
            **extra,
        )
        guarded(listener)(args)  # type: ignore[arg-type]

    def command(self, user: str, text: str, *, channel: str = f.CHANNEL) -> None:
        body = {
            "command": "/milestone",
            "text": text,
            "user_id": user,
            "team_id": f.TEAM,
            "channel_id": channel,
            "trigger_id": TRIGGER,
            "response_url": RESPONSE_URL,
        }
        self.run(commands.handle_milestone_command, body, command=body)

    def press(self, action: Action, user: str, value: str, *, in_home: bool = False) -> None:
        """A button that calls one service (handlers.actions.press_button), on a card in
        the channel or (`in_home`) in App Home."""
        self.click(actions.press_button, user, value, action_id=action.value, in_home=in_home)

    def click(
        self,
        listener: Callable[..., None],
        user: str,
        value: str,
        *,
        action_id: str = "x",
        in_home: bool = False,
    ) -> None:
        body: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "team_id": f.TEAM},
            "team": {"id": f.TEAM},
            "trigger_id": TRIGGER,
            "actions": [{"action_id": action_id, "value": value, "action_ts": "1.2"}],
        }
        if in_home:
            body["container"] = {"type": "view", "view_id": "VHOME"}
            body["view"] = {"id": "VHOME", "type": "home"}
        else:
            body["channel"] = {"id": f.CHANNEL}
            body["container"] = {
                "type": "message",
                "channel_id": f.CHANNEL,
                "message_ts": "1.000100",
            }
            body["response_url"] = RESPONSE_URL
        self.run(listener, body)

    def submit(
        self,
        listener: Callable[..., None],
        user: str,
        modal: Any,
        inputs: dict[str, Any],
    ) -> None:
        view = modal.to_dict()
        view |= {
            "id": "V0001",
            "type": "modal",
            "state": {"values": build_state_values(view["blocks"], inputs=inputs)},
        }
        body = {
            "type": "view_submission",
            "user": {"id": user, "team_id": f.TEAM},
            "team": {"id": f.TEAM},
            "trigger_id": TRIGGER,
            "view": view,
        }
        self.run(listener, body, view=view)


@pytest.fixture
def sessions(sqlite_template: Path, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    path = tmp_path / "listeners.sqlite3"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield make_session_factory(engine)
    engine.dispose()


def make_world(sessions: sessionmaker[Session], *, bot_is_member: bool = True) -> World:
    journal = Journal()
    slack = FakeSlack(journal, bot_is_member=bot_is_member)
    delivery = FakeDelivery(journal)
    deps = Deps(
        sessions=sessions,
        clock=lambda: f.later(days=1),
        policy=DEFAULT_POLICY,
        delivery=delivery,
        client=slack,  # type: ignore[arg-type]
    )

    def committed() -> list[str]:
        with sessions() as session:
            return list(session.scalars(select(Event.kind).order_by(Event.id)))

    return World(
        sessions,
        journal,
        FakeAck(journal, committed),
        FakeRespond(journal),
        slack,
        delivery,
        {"deps": deps},
    )


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    return make_world(sessions)


def acked_once_first(world: World) -> Call:
    """The listener acked exactly once, before anything else happened."""
    assert len(world.ack.calls) == 1, world.ack.calls
    assert world.journal.first().who == "ack", world.journal.calls
    return world.ack.calls[0]


def acked_once_after_the_commit(world: World, event: str) -> Call:
    """The listener acked exactly once, once `event` was in the database, and before it
    delivered anything or called Slack."""
    assert len(world.ack.calls) == 1, world.ack.calls
    [ack] = world.ack.calls
    assert ack.committed and ack.committed[-1] == event, ack.committed
    assert world.journal.first().who == "ack", world.journal.calls
    return ack


def refused(world: World, *, events_before: list[str]) -> str:
    """Refused before anything changed: acked once (by the error policy, with nothing
    committed since), the refusal told to the person alone, nothing delivered."""
    [ack] = world.ack.calls
    assert ack.committed == events_before, ack.committed
    assert world.event_kinds() == events_before
    assert world.delivery.delivered == [] and world.replies() == []
    [told] = world.respond.calls
    assert told["response_type"] == "ephemeral"
    return str(told["text"])


def assert_acked_before_slack(world: World) -> None:
    assert len(world.ack.calls) == 1, world.ack.calls
    if world.slack.calls():
        assert world.journal.index("ack") < world.journal.index("slack"), world.journal.calls


def in_db(world: World, build: Callable[[Session], int]) -> int:
    with world.session() as session:
        return build(session)


def first_milestone(world: World, contract_id: int) -> Milestone:
    return world.contract(contract_id).milestones[0]


def pending_request(world: World, contract_id: int) -> ChangeRequest:
    with world.session() as session:
        services.change_milestones(
            session,
            contract_id=contract_id,
            actor_id=f.FREELANCER,
            changes=[MilestoneEdit(2, amount="2,000")],
            message="Smaller second phase",
            now=f.later(hours=1),
        )
    with world.session() as session, session.begin():
        request_id = session.scalars(
            select(ChangeRequest.id).where(ChangeRequest.contract_id == contract_id)
        ).one()
        return queries.load_request(session, request_id)  # with its changes, for the modal


# --- /milestone ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "help",
        "status",
        "history",
        "fund",
        "submit",
        "approve",
        "start",
        'changes "More contrast"',
        "accept 9",
        "end",
        "frobnicate",
        'add "Launch" abc 2026-12-24',
        "contract=999 status",
    ],
)
def test_every_command_acks_exactly_once_before_anything_else(world: World, text: str) -> None:
    in_db(world, f.active_contract)

    world.command(f.CLIENT, text)  # a refusal too: the one error policy acks it

    assert acked_once_first(world).kwargs == {}  # an empty ack: the answer comes after


def test_help_answers_the_person_and_calls_no_service(world: World) -> None:
    world.command(f.CLIENT, "help")

    acked_once_first(world)
    [answer] = world.respond.calls
    assert answer["response_type"] == "ephemeral"
    assert "/milestone new" in str(answer)
    assert world.delivery.delivered == [] and world.slack.calls() == []
    assert world.count(Event) == 0


def test_a_successful_command_calls_one_service_and_delivers_exactly_its_outbox(
    world: World,
) -> None:
    contract_id = in_db(world, f.active_contract)
    events_before, outbox_before = world.event_kinds(), world.outbox_ids()

    world.command(f.CLIENT, "fund")

    acked_once_after_the_commit(world, "milestone_funded")
    assert world.event_kinds()[len(events_before) :] == ["milestone_funded"]
    new_outbox = world.outbox_ids() - outbox_before
    assert new_outbox, "funding announces itself"
    assert [set(ids) for ids in world.delivery.delivered] == [new_outbox]
    [answer] = world.replies()  # the answer is delivered with the rest, from the outbox
    assert answer.id in new_outbox and answer.address == f"url:{RESPONSE_URL}"
    assert "fund" in (answer.body or "").lower()
    assert first_milestone(world, contract_id).status == "funded"
    assert world.respond.calls == [] and world.slack.calls() == []


def test_new_checks_membership_and_parties_then_commits_the_contract_before_the_ack(
    world: World,
) -> None:
    world.command(f.CLIENT, f'new "Website" client=<@{f.CLIENT}> freelancer=<@{f.FREELANCER}>')

    assert [c.name for c in world.journal.calls] == [
        "conversations_info",
        "users_info",
        "users_info",
        "ack",
        "deliver",
    ]
    [ack] = world.ack.calls
    assert ack.committed == ["contract_created"]
    assert world.slack.calls("conversations_info")[0].kwargs == {"channel": f.CHANNEL}
    assert world.count(Contract) == 1
    assert [set(ids) for ids in world.delivery.delivered] == [world.outbox_ids()]
    [answer] = world.replies()
    assert "Website" in (answer.body or "")


def test_new_where_the_bot_is_not_a_member_refuses_with_how_to_invite_and_creates_nothing(
    sessions: sessionmaker[Session],
) -> None:
    world = make_world(sessions, bot_is_member=False)

    world.command(f.CLIENT, f'new "Website" client=<@{f.CLIENT}> freelancer=<@{f.FREELANCER}>')

    assert "/invite" in refused(world, events_before=[])
    assert [c.name for c in world.slack.calls()] == ["conversations_info"]
    assert world.count(Contract) == 0 and world.count(OutboxMessage) == 0


def test_new_without_arguments_opens_the_new_contract_modal(world: World) -> None:
    world.command(f.CLIENT, "new")

    assert [c.name for c in world.journal.calls] == ["conversations_info", "ack", "views_open"]
    [opened] = world.slack.calls("views_open")
    assert opened.kwargs["trigger_id"] == TRIGGER
    assert opened.kwargs["view"]["callback_id"] == View.NEW_CONTRACT
    assert ModalContext.load(opened.kwargs["view"]["private_metadata"]).channel_id == f.CHANNEL
    assert world.count(Contract) == 0


def test_add_without_arguments_opens_a_modal_with_the_trigger_id(world: World) -> None:
    contract_id = in_db(world, f.new_contract)

    world.command(f.CLIENT, "add")

    acked_once_first(world)
    [opened] = world.slack.calls("views_open")
    assert opened.kwargs["trigger_id"] == TRIGGER
    view = opened.kwargs["view"]
    assert view["type"] == "modal" and view["callback_id"] == View.ADD_MILESTONE
    assert ModalContext.load(view["private_metadata"]).contract_id == contract_id
    assert world.count(Milestone) == 0 and world.delivery.delivered == []


def test_a_command_in_a_channel_without_a_contract_is_refused_with_how_to_create_one(
    world: World,
) -> None:
    world.command(f.CLIENT, "status", channel="C0EMPTY")

    acked_once_first(world)
    assert "/milestone new" in refused(world, events_before=[])
    assert world.slack.calls() == []


# --- buttons ------------------------------------------------------------------------------


def test_the_agree_button_records_agreement_and_delivers(world: World) -> None:
    contract_id = in_db(world, f.new_contract)
    with world.session() as session:
        f.add(session, contract_id)
    outbox_before = world.outbox_ids()

    world.press(Action.AGREE, f.CLIENT, ContractRef(contract_id=contract_id).dump())

    acked_once_after_the_commit(world, "terms_agreed")
    assert [set(ids) for ids in world.delivery.delivered] == [world.outbox_ids() - outbox_before]
    # One click, one confirmation: the card (in the outbox, updated in place) is the answer.
    assert world.replies() == [] and world.respond.calls == []


def test_a_button_in_app_home_is_answered_with_a_notice(world: World) -> None:
    contract_id = in_db(world, f.new_contract)
    with world.session() as session:
        f.add(session, contract_id)

    world.press(Action.AGREE, f.CLIENT, ContractRef(contract_id=contract_id).dump(), in_home=True)

    acked_once_after_the_commit(world, "terms_agreed")
    [notice] = world.slack.calls("views_open")  # no channel to answer in: a small modal
    assert "agreed" in str(notice).lower()
    assert world.replies() == []


def test_the_fund_button_funds_that_milestone(world: World) -> None:
    contract_id = in_db(world, f.active_contract)
    milestone = first_milestone(world, contract_id)

    world.press(
        Action.FUND,
        f.CLIENT,
        MilestoneRef(contract_id=contract_id, milestone_id=milestone.id).dump(),
    )

    acked_once_after_the_commit(world, "milestone_funded")
    assert first_milestone(world, contract_id).status == "funded"
    assert len(world.delivery.delivered) == 1 and world.replies() == []


def test_the_approve_button_releases_submitted_work(world: World) -> None:
    contract_id = in_db(world, f.submitted_contract)
    milestone = first_milestone(world, contract_id)

    world.press(
        Action.APPROVE,
        f.CLIENT,
        MilestoneRef(contract_id=contract_id, milestone_id=milestone.id).dump(),
    )

    acked_once_after_the_commit(world, "milestone_released")
    assert first_milestone(world, contract_id).status == "released"
    assert len(world.delivery.delivered) == 1


def test_a_click_by_the_wrong_person_is_refused_and_changes_nothing(world: World) -> None:
    contract_id = in_db(world, f.submitted_contract)
    milestone = first_milestone(world, contract_id)
    events_before = world.event_kinds()

    world.press(
        Action.APPROVE,
        f.FREELANCER,
        MilestoneRef(contract_id=contract_id, milestone_id=milestone.id).dump(),
    )

    assert "client" in refused(world, events_before=events_before)
    assert first_milestone(world, contract_id).status == "submitted"


def test_a_click_by_an_outsider_is_refused(world: World) -> None:
    contract_id = in_db(world, f.active_contract)
    milestone = first_milestone(world, contract_id)

    events_before = world.event_kinds()

    world.press(
        Action.FUND,
        f.OUTSIDER,
        MilestoneRef(contract_id=contract_id, milestone_id=milestone.id).dump(),
    )

    assert "not a party" in refused(world, events_before=events_before)
    assert first_milestone(world, contract_id).status == "pending"


def test_the_accept_and_withdraw_buttons_decide_a_pending_request(
    world: World, sessions: sessionmaker[Session]
) -> None:
    contract_id = in_db(world, f.active_contract)
    request = pending_request(world, contract_id)
    ref = RequestRef(contract_id=contract_id, request_id=request.id).dump()

    world.press(Action.ACCEPT, f.CLIENT, ref)

    acked_once_after_the_commit(world, "request_accepted")
    assert world.contract(contract_id).milestones[1].amount_minor == 200000

    again = make_world(sessions)
    replies_before = len(world.replies())
    again.press(Action.WITHDRAW, f.FREELANCER, ref)  # no longer pending: it can't be withdrawn
    [ack] = again.ack.calls
    assert ack.committed[-1] == "request_accepted"
    assert "accepted" in again.respond.calls[0]["text"]
    assert again.delivery.delivered == [] and len(again.replies()) == replies_before


def test_a_stale_button_value_is_refused_and_changes_nothing(world: World) -> None:
    world.press(Action.FUND, f.CLIENT, "not json")

    acked_once_first(world)
    assert refused(world, events_before=[])


@pytest.mark.parametrize(
    ("listener", "callback_id"),
    [
        (actions.open_decline, View.DECLINE),
        (actions.open_request_changes, View.REQUEST_CHANGES),
        (actions.open_propose, View.PROPOSE),
        (actions.open_counter, View.COUNTER),
    ],
)
def test_buttons_that_open_a_modal_ack_first_then_open_it_with_the_trigger_id(
    world: World, listener: Callable[..., None], callback_id: str
) -> None:
    contract_id = in_db(world, f.submitted_contract)
    milestone = first_milestone(world, contract_id)
    if listener in (actions.open_decline, actions.open_counter):
        value = RequestRef(
            contract_id=contract_id, request_id=pending_request(world, contract_id).id
        ).dump()
    elif listener is actions.open_request_changes:
        value = MilestoneRef(contract_id=contract_id, milestone_id=milestone.id).dump()
    else:
        value = ContractRef(contract_id=contract_id).dump()
    events_before = world.event_kinds()

    world.click(listener, f.CLIENT, value)

    acked_once_first(world)
    assert_acked_before_slack(world)
    [opened] = world.slack.calls("views_open")
    assert opened.kwargs["trigger_id"] == TRIGGER
    assert opened.kwargs["view"]["callback_id"] == callback_id
    assert world.event_kinds() == events_before  # opening a form changes nothing


def test_the_add_button_while_negotiating_opens_the_add_modal(world: World) -> None:
    contract_id = in_db(world, f.new_contract)

    world.click(actions.open_add, f.FREELANCER, ContractRef(contract_id=contract_id).dump())

    acked_once_first(world)
    [opened] = world.slack.calls("views_open")
    assert opened.kwargs["view"]["callback_id"] == View.ADD_MILESTONE


def test_a_modal_button_for_the_wrong_person_opens_nothing(world: World) -> None:
    contract_id = in_db(world, f.submitted_contract)
    milestone = first_milestone(world, contract_id)

    events_before = world.event_kinds()

    world.click(
        actions.open_request_changes,
        f.FREELANCER,
        MilestoneRef(contract_id=contract_id, milestone_id=milestone.id).dump(),
    )

    acked_once_first(world)
    assert refused(world, events_before=events_before)
    assert world.slack.calls() == []


# --- modal submissions --------------------------------------------------------------------


def add_modal(world: World, contract_id: int) -> Any:
    contract = world.contract(contract_id)
    return modals.build_add_milestone_modal(
        ModalContext(channel_id=f.CHANNEL, contract_id=contract_id), contract
    )


@pytest.mark.parametrize(
    ("inputs", "block_id"),
    [
        ({"title": "Launch", "amount": "abc", "due_date": "2026-12-24"}, fields.AMOUNT),
        ({"title": "Launch", "amount": "-5", "due_date": "2026-12-24"}, fields.AMOUNT),
        ({"title": "Launch", "amount": "1.234", "due_date": "2026-12-24"}, fields.AMOUNT),
        ({"title": "Launch", "amount": "100", "due_date": None}, fields.DUE_DATE),
        ({"title": "", "amount": "100", "due_date": "2026-12-24"}, fields.TITLE),
    ],
)
def test_an_invalid_add_milestone_form_is_acked_with_field_errors_and_saves_nothing(
    world: World, inputs: dict[str, Any], block_id: str
) -> None:
    contract_id = in_db(world, f.new_contract)
    events_before, outbox_before = world.event_kinds(), world.outbox_ids()

    world.submit(views.submit_add_milestone, f.CLIENT, add_modal(world, contract_id), inputs)

    [ack] = world.ack.calls
    assert ack.kwargs["response_action"] == "errors"
    assert list(ack.kwargs["errors"]) == [block_id]
    assert ack.kwargs["errors"][block_id]
    assert world.count(Milestone) == 0
    assert world.event_kinds() == events_before and world.outbox_ids() == outbox_before
    assert world.delivery.delivered == []
    # Slack is asked nothing, but the person's locale for an amount with separators.
    profile = ["users_info"] if "." in (inputs["amount"] or "") else []
    assert [c.name for c in world.slack.calls()] == profile


def test_a_valid_add_milestone_form_is_saved_acked_then_confirmed(world: World) -> None:
    contract_id = in_db(world, f.new_contract)
    outbox_before = world.outbox_ids()

    world.submit(
        views.submit_add_milestone,
        f.CLIENT,
        add_modal(world, contract_id),
        {"title": "Launch", "amount": "$1,500", "due_date": "2026-12-24"},
    )

    [ack] = world.ack.calls
    assert ack.kwargs == {} and ack.args == ()  # closes the modal
    assert ack.committed[-1] == "milestone_added"
    [milestone] = world.contract(contract_id).milestones
    assert (milestone.title, milestone.amount_minor, milestone.due_date) == (
        "Launch",
        150000,
        date(2026, 12, 24),
    )
    assert [set(ids) for ids in world.delivery.delivered] == [world.outbox_ids() - outbox_before]
    # "$1,500" is read in the person's locale: their profile is the one Slack call.
    [lookup] = world.slack.calls()
    assert (lookup.name, lookup.kwargs) == (
        "users_info",
        {"user": f.CLIENT, "include_locale": True},
    )
    [confirm] = world.replies()  # in the channel the form was opened from, to this person
    assert confirm.address == f"ephemeral:{f.CHANNEL}:{f.CLIENT}"


def test_an_edit_form_with_an_unreadable_amount_is_acked_with_an_error_on_the_amount(
    world: World,
) -> None:
    contract_id = in_db(world, f.active_contract)
    contract = world.contract(contract_id)
    ctx = ModalContext(channel_id=f.CHANNEL, contract_id=contract_id, milestone_number=2)
    modal = modals.build_edit_milestone_modal(ctx, contract, contract.milestones[1])
    events_before = world.event_kinds()

    world.submit(views.submit_edit_milestone, f.CLIENT, modal, {"amount": "lots"})

    [ack] = world.ack.calls
    assert ack.kwargs["response_action"] == "errors"
    assert list(ack.kwargs["errors"]) == [fields.AMOUNT]
    assert world.contract(contract_id).milestones[1].amount_minor == 250000
    assert world.event_kinds() == events_before and world.delivery.delivered == []


def test_a_new_contract_form_without_a_client_is_acked_with_an_error_on_that_input(
    world: World,
) -> None:
    modal = modals.build_new_contract_modal(ModalContext(channel_id=f.CHANNEL))

    world.submit(
        views.submit_new_contract,
        f.CLIENT,
        modal,
        {"title": "Website", "freelancer": f.FREELANCER},
    )

    [ack] = world.ack.calls
    assert ack.kwargs["response_action"] == "errors"
    assert fields.CLIENT in ack.kwargs["errors"]
    assert world.count(Contract) == 0 and world.slack.calls() == []


def test_a_new_contract_form_the_domain_refuses_is_acked_with_errors_and_saves_nothing(
    world: World,
) -> None:
    modal = modals.build_new_contract_modal(ModalContext(channel_id=f.CHANNEL))

    world.submit(  # the creator is neither side of the contract
        views.submit_new_contract,
        f.OUTSIDER,
        modal,
        {"title": "Website", "client": f.CLIENT, "freelancer": f.FREELANCER},
    )

    [ack] = world.ack.calls
    assert ack.kwargs["response_action"] == "errors"
    assert set(ack.kwargs["errors"]) <= {b.get("block_id") for b in modal.to_dict()["blocks"]}
    assert world.count(Contract) == 0 and world.delivery.delivered == []


def test_a_valid_new_contract_form_creates_it_and_acks_before_any_slack_call(
    world: World,
) -> None:
    modal = modals.build_new_contract_modal(ModalContext(channel_id=f.CHANNEL))

    world.submit(
        views.submit_new_contract,
        f.CLIENT,
        modal,
        {"title": "Website", "client": f.CLIENT, "freelancer": f.FREELANCER},
    )

    [ack] = world.ack.calls
    assert ack.kwargs == {} and ack.committed == ["contract_created"]
    assert world.count(Contract) == 1
    assert_acked_before_slack(world)  # the parties' workspaces are looked up afterwards
    assert world.journal.index("ack") < world.journal.index("deliver")
    assert [r.address for r in world.replies()] == [f"ephemeral:{f.CHANNEL}:{f.CLIENT}"]


def test_a_decline_form_with_a_reason_declines_the_request(world: World) -> None:
    contract_id = in_db(world, f.active_contract)
    request = pending_request(world, contract_id)
    ctx = ModalContext(channel_id=f.CHANNEL, contract_id=contract_id, request_id=request.id)
    outbox_before = world.outbox_ids()

    world.submit(
        views.submit_decline,
        f.CLIENT,
        modals.build_decline_modal(ctx, request),
        {"reason": "Budget is fixed"},
    )

    [ack] = world.ack.calls
    assert ack.kwargs == {} and ack.committed[-1] == "request_declined"
    assert [set(ids) for ids in world.delivery.delivered] == [world.outbox_ids() - outbox_before]
    assert_acked_before_slack(world)


def test_a_decline_form_from_the_proposer_is_refused_in_the_ack(world: World) -> None:
    contract_id = in_db(world, f.active_contract)
    request = pending_request(world, contract_id)
    ctx = ModalContext(channel_id=f.CHANNEL, contract_id=contract_id, request_id=request.id)

    world.submit(
        views.submit_decline,
        f.FREELANCER,
        modals.build_decline_modal(ctx, request),
        {"reason": "Changed my mind"},
    )

    [ack] = world.ack.calls
    assert ack.kwargs["response_action"] == "errors"
    assert list(ack.kwargs["errors"]) == [fields.REASON]
    # A form shows plain text: the client is named, not mentioned (users.info).
    assert "<@" not in ack.kwargs["errors"][fields.REASON]
    assert [c.name for c in world.slack.calls()] == ["users_info"]
    assert "request_declined" not in world.event_kinds()
    assert world.delivery.delivered == []


def test_a_propose_form_with_no_change_is_acked_with_an_error_and_saves_nothing(
    world: World,
) -> None:
    contract_id = in_db(world, f.active_contract)
    contract = world.contract(contract_id)
    modal = modals.build_propose_changes_modal(
        ModalContext(channel_id=f.CHANNEL, contract_id=contract_id), contract, direct=False
    )
    events_before = world.event_kinds()

    world.submit(views.submit_propose_changes, f.FREELANCER, modal, {})

    [ack] = world.ack.calls
    assert ack.kwargs["response_action"] == "errors"
    assert list(ack.kwargs["errors"]) == [fields.NEW_TITLE]
    assert world.event_kinds() == events_before and world.count(ChangeRequest) == 0


def test_a_request_changes_form_out_of_date_is_refused_in_the_ack(world: World) -> None:
    contract_id = in_db(world, f.funded_contract)  # nothing submitted: no review to answer
    milestone = first_milestone(world, contract_id)
    modal = modals.build_request_changes_modal(
        ModalContext(channel_id=f.CHANNEL, contract_id=contract_id, milestone_id=milestone.id),
        milestone,
    )

    world.submit(views.submit_request_changes, f.CLIENT, modal, {"note": "More contrast"})

    [ack] = world.ack.calls
    assert ack.kwargs["response_action"] == "errors"
    assert list(ack.kwargs["errors"]) == [fields.NOTE]
    assert first_milestone(world, contract_id).status == "funded"
    assert world.delivery.delivered == []
