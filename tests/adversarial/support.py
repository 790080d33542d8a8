"""Helpers for the adversarial suite: act as anyone (any workspace), forge what a
client could forge, snapshot everything a refusal must leave alone, and run
`milestone-bot ledger verify` as an operator would."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.cli import main
from domain.export import export_contracts
from domain.model import Base, IntentKind, LedgerEntry, OutboxMessage
from sandbox.emulator import Response, build_state_values
from tests.e2e.conftest import CHANNEL, OTHER_TEAM, PARTNER, TEAM, Bot, blocks_text

APOLOGY = "something went wrong"
# Tables a refusal must leave exactly as they were. `request_receipt` (replay protection)
# and `message_ref` (where delivery put the cards) are not part of "the state"; outbox
# rows are compared by count, the person's own answers (replies) left out.
STATE_TABLES = (
    "contract",
    "party",
    "milestone",
    "change_request",
    "change",
    "ledger_entry",
    "event",
    "reminder",
)


def team_of(user: str) -> str:
    return OTHER_TEAM if user == PARTNER else TEAM


# --- the ledger, verified as an operator does it ------------------------------------------


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ledger_verify(database_url: str) -> tuple[int, str, str]:
    """`milestone-bot ledger verify` on `database_url`: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    guard = logging.NullHandler()  # keeps the CLI's logging.basicConfig a no-op
    logging.getLogger().addHandler(guard)
    try:
        with (
            _environment(DATABASE_URL=database_url),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = main(["ledger", "verify"])
    finally:
        logging.getLogger().removeHandler(guard)
    return code, out.getvalue(), err.getvalue()


def assert_ledger_verifies(database_url: str) -> str:
    code, out, err = ledger_verify(database_url)
    assert code == 0 and out.startswith("ledger OK:"), f"ledger verify failed:\n{out}{err}"
    return out.strip()


# --- the state a refusal must not touch ----------------------------------------------------


@dataclass(frozen=True)
class State:
    export: Any
    rows: Mapping[str, tuple[tuple[Any, ...], ...]]
    outbox: int
    channels: Mapping[str, tuple[tuple[str, str, str], ...]]


def state(bot: Bot, channels: tuple[str, ...] = (CHANNEL,)) -> State:
    """The export JSON, every row of the business tables, and what the channels show,
    once the work of earlier requests (App Home publishes included) is done."""
    bot.quiet()
    return State(
        export=exported(bot.runtime.sessions),
        rows=table_rows(bot.runtime.sessions),
        outbox=len(outbox_rows(bot.runtime.sessions)),
        channels={
            channel: tuple(
                (m.ts, m.text, blocks_text(m.blocks)) for m in bot.slack.messages(channel)
            )
            for channel in channels
        },
    )


def exported(sessions: sessionmaker[Session]) -> Any:
    with sessions() as session, session.begin():
        return export_contracts(session)


def table_rows(sessions: sessionmaker[Session]) -> dict[str, tuple[tuple[Any, ...], ...]]:
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    with sessions() as session, session.begin():
        return {
            name: tuple(
                tuple(row)
                for row in session.execute(
                    select(tables[name]).order_by(*tables[name].primary_key.columns)
                )
            )
            for name in STATE_TABLES
        }


def ledger_entries(sessions: sessionmaker[Session]) -> list[LedgerEntry]:
    with sessions() as session, session.begin():
        return list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))


def outbox_rows(sessions: sessionmaker[Session]) -> list[OutboxMessage]:
    """What the bot queued to show in Slack, but the answers to the person who acted."""
    with sessions() as session, session.begin():
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.kind != IntentKind.REPLY)
                .order_by(OutboxMessage.id)
            )
        )


# --- acting as anyone ------------------------------------------------------------------------


def command(bot: Bot, user: str, text: str, *, channel: str = CHANNEL) -> str:
    """`/milestone <text>` typed by `user` (from their own workspace); the reply text."""
    response = bot.driver.command(
        user, text, channel_id=channel, team_id=team_of(user), show_reply=False
    )
    assert response.status == 200, (response.status, response.text)
    return bot.reply_to(response)


def button(bot: Bot, subject: str, label: str) -> tuple[str, str, str, str]:
    """(channel, ts, action_id, value) of the button labelled `label` on a card."""
    card = bot.card(subject)
    ref = bot.driver.find_button(card.channel, card.ts, label_startswith=label)
    assert ref.value is not None
    return card.channel, card.ts, ref.action_id, ref.value


def click(bot: Bot, user: str, subject: str, label: str, *, value: str | None = None) -> Response:
    """`user` clicks `label` on the card `subject`; `value` rewrites the button's value."""
    channel, ts, action_id, shown = button(bot, subject, label)
    response = bot.driver.click(
        user,
        channel_id=channel,
        message_ts=ts,
        action_id=action_id,
        value=shown if value is None else value,
        team_id=team_of(user),
    )
    assert response.status == 200, (response.status, response.text)
    return response


def click_reply(bot: Bot, user: str, subject: str, label: str, *, value: str | None = None) -> str:
    """What `user` sees after the click: the answer only they see (a refusal, a repeat)
    or, when there is none, the card they clicked, updated in place."""
    card = bot.card(subject)
    answers = bot.answers_to(click(bot, user, subject, label, value=value))
    if answers:
        return answers[-1]
    updated = bot.slack.message(card.channel, card.ts)
    assert updated is not None, f"the card {subject} is gone"
    return blocks_text(updated.blocks)


def open_modal(bot: Bot, user: str, subject: str, label: str) -> dict[str, Any]:
    """`user` clicks a button that opens a modal; the modal as Slack shows it."""
    before = {view["id"] for view in bot.slack.open_views(user)}
    click(bot, user, subject, label)

    def opened() -> dict[str, Any] | None:
        views = bot.slack.open_views(user)
        return views[-1] if views and views[-1]["id"] not in before else None

    return bot.slack.wait_for(opened, message=f"a modal for {user} after {label}")


def open_modal_by_command(bot: Bot, user: str, text: str, *, channel: str = CHANNEL) -> Any:
    """`/milestone edit 2`, `/milestone add`: the form the command opens."""
    response = bot.driver.command(
        user, text, channel_id=channel, team_id=team_of(user), show_reply=False
    )
    assert response.status == 200, (response.status, response.text)
    trigger = response.trigger_id
    return bot.slack.wait_for(
        lambda: (
            [c for c in bot.slack.calls_to("views.open") if c.params.get("trigger_id") == trigger]
            and bot.slack.open_views(user)[-1]
        ),
        message=f"the form of /milestone {text}",
    )


def submit_view_as(
    bot: Bot,
    user: str,
    view: Mapping[str, Any],
    *,
    inputs: Mapping[str, Any],
    private_metadata: str | None = None,
) -> Response:
    """A view_submission by `user` of `view` (opened by anyone), with `private_metadata`
    rewritten if given: what a forged or replayed submission looks like to the app."""
    forged = copy.deepcopy(dict(view))
    if private_metadata is not None:
        forged["private_metadata"] = private_metadata
    forged["state"] = {"values": build_state_values(forged.get("blocks") or [], None, inputs)}
    team = team_of(user)
    payload = {
        "type": "view_submission",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": bot.slack.app_id,
        "team": {"id": team, "domain": "workspace"},
        "trigger_id": bot.slack.issue_trigger_id(user),
        "view": forged,
        "response_urls": [],
    }
    response = bot.driver.send_payload(payload)
    assert response.status == 200, (response.status, response.text)
    return response


def settle(seconds: float = 0.05) -> None:
    """Give work after an ack a moment (a second, unexpected reply would show up)."""
    time.sleep(seconds)
