"""Authorization end to end over signed HTTP: every state-changing command, button and
modal submission, tried by every wrong person — an outsider, an agency member where
members may not act, the provider side where only the client may, the client where
only the provider may, and a user from another workspace (another team id) in the
shared channel — is refused with a message naming who can act, and nothing changes:
not the database (export JSON and every row), not the channel.

Then the same with forged payloads: button values and modal `private_metadata`
rewritten to point at another contract's request or milestone, or at nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.adversarial.support import (
    APOLOGY,
    State,
    click_reply,
    command,
    open_modal,
    open_modal_by_command,
    settle,
    state,
    submit_view_as,
    table_rows,
)
from tests.e2e.conftest import (
    CHANNEL,
    CLIENT,
    FREELANCER,
    MANAGER,
    MEMBER,
    OUTSIDER,
    PARTNER,
    Bot,
)

pytestmark = pytest.mark.e2e

AGENCY_CHANNEL = "C0AGENCY"
OTHER_CHANNEL = "C0OTHER"
EVERYONE = [CLIENT, FREELANCER, MANAGER, MEMBER, OUTSIDER, PARTNER]
STRANGERS = (OUTSIDER, PARTNER)  # PARTNER: another workspace, in the shared channel
NEW_INDIVIDUAL = f'new "Website" client=<@{CLIENT}> freelancer=<@{FREELANCER}>'
NEW_AGENCY = (
    f'new "App" client=<@{CLIENT}> agency="Pixel & Co" manager=<@{MANAGER}> members=<@{MEMBER}>'
)

# What a refusal must say: who can do it.
ONLY_CLIENT = (CLIENT,)


# --- building the situations, as the people themselves would ------------------------------


def individual_in_review(bot: Bot) -> None:
    """Contract 1 in CHANNEL: milestone 1 submitted, request 1 (raise milestone 3) pending."""
    assert "created" in command(bot, CLIENT, NEW_INDIVIDUAL)
    for n in (1, 2, 3):
        assert "added" in command(bot, CLIENT, f'add "Part {n}" {n}000 2030-0{n}-01')
    command(bot, CLIENT, "start")
    assert "active" in command(bot, FREELANCER, "start")
    assert "Funded" in click_reply(bot, CLIENT, "contract:1", "Fund")
    assert "Submitted" in command(bot, FREELANCER, 'submit "v1 is in Figma"')
    assert "Sent change request #1" in command(
        bot, FREELANCER, 'edit 3 amount=4000 message="More pages"'
    )


def agency_negotiating(bot: Bot) -> int:
    """An agency contract in AGENCY_CHANNEL, two milestones, the client has agreed."""
    bot.slack.add_channel(AGENCY_CHANNEL, "agency-deal", members=EVERYONE)
    reply = command(bot, CLIENT, NEW_AGENCY, channel=AGENCY_CHANNEL)
    contract_id = int(reply.split("Contract ", 1)[1].split(" ", 1)[0])
    for n in (1, 2):
        command(bot, CLIENT, f'add "Screen {n}" {n}500 2030-0{n}-15', channel=AGENCY_CHANNEL)
    command(bot, CLIENT, "start", channel=AGENCY_CHANNEL)
    return contract_id


def agency_in_review(bot: Bot) -> int:
    """The agency contract active: milestone 1 submitted by the member, a request pending."""
    contract_id = agency_negotiating(bot)
    assert "active" in command(bot, MANAGER, "start", channel=AGENCY_CHANNEL)
    assert "Funded" in click_reply(bot, CLIENT, f"contract:{contract_id}", "Fund")
    assert "Submitted" in command(bot, MEMBER, 'submit "Screens attached"', channel=AGENCY_CHANNEL)
    assert "Sent change request #1" in command(
        bot, MANAGER, 'edit 2 title="Screen 2, revised"', channel=AGENCY_CHANNEL
    )
    return contract_id


# --- the attempts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One thing a wrong person tries; `run` returns what they are told."""

    actor: str
    what: str
    run: Callable[[Bot, str], str]
    names: Sequence[str]  # whose ids the refusal must mention
    no_modal: bool = False


@dataclass
class Matrix:
    channels: tuple[str, ...]
    attempts: list[Attempt] = field(default_factory=list)

    def commands(self, actors: Sequence[str], texts: Sequence[str], names: Sequence[str]) -> None:
        channel = self.channels[0]
        for actor in actors:
            for text in texts:

                def run(bot: Bot, user: str, text: str = text) -> str:
                    return command(bot, user, text, channel=channel)

                self.attempts.append(Attempt(actor, f"/milestone {text}", run, names))

    def buttons(
        self,
        actors: Sequence[str],
        subject: str,
        labels: Sequence[str],
        names: Sequence[str],
        *,
        opens_modal: bool = False,
    ) -> None:
        for actor in actors:
            for label in labels:

                def run(bot: Bot, user: str, label: str = label) -> str:
                    return click_reply(bot, user, subject, label)

                self.attempts.append(
                    Attempt(actor, f"{label!r} on {subject}", run, names, no_modal=opens_modal)
                )

    def forged_views(
        self,
        actors: Sequence[str],
        view: dict[str, Any],
        inputs: dict[str, Any],
        names: Sequence[str],
    ) -> None:
        for actor in actors:

            def run(bot: Bot, user: str) -> str:
                response = submit_view_as(bot, user, view, inputs=inputs)
                answer = response.json()
                assert answer and answer.get("response_action") == "errors", answer
                return " ".join(answer["errors"].values())

            self.attempts.append(Attempt(actor, f"submits {view['callback_id']!r}", run, names))


def name_of(bot: Bot, user_id: str) -> str:
    found = bot.slack.user(user_id)
    return found.name if found is not None else user_id


def attack(bot: Bot, matrix: Matrix) -> int:
    """Run every attempt; each must be refused, naming who can act, changing nothing."""
    failures: list[str] = []
    for attempt in matrix.attempts:
        before: State = state(bot, matrix.channels)
        views_before = len(bot.slack.open_views(attempt.actor))
        label = f"{attempt.actor} {attempt.what}"
        try:
            reply = attempt.run(bot, attempt.actor)
        except AssertionError as error:
            failures.append(f"{label}: {error}")
            continue
        settle(0.02)
        if state(bot, matrix.channels) != before:
            failures.append(f"{label}: something changed (reply: {reply!r})")
        if APOLOGY in reply or "Only" not in reply:
            failures.append(f"{label}: not a clear refusal: {reply!r}")
        # A message mentions people; a form's error (plain text) names them.
        missing = [
            user
            for user in attempt.names
            if f"<@{user}>" not in reply and f"@{name_of(bot, user)}" not in reply
        ]
        if missing:
            failures.append(f"{label}: the refusal does not name {missing}: {reply!r}")
        if attempt.no_modal and len(bot.slack.open_views(attempt.actor)) != views_before:
            failures.append(f"{label}: a modal was opened")
    assert not failures, f"{len(failures)} of {len(matrix.attempts)} attempts:\n" + "\n".join(
        failures
    )
    return len(matrix.attempts)


CLIENT_ONLY_COMMANDS = ("fund", "approve", 'changes "Redo it"', "accept 1", 'decline 1 "No"')
EDIT_COMMANDS = ('add "Extra" 100 2030-05-01', 'edit 3 title="Renamed"', "delete 2")


def test_every_wrong_person_is_refused_on_an_individual_contract_in_review(bot: Bot) -> None:
    individual_in_review(bot)
    # The rightful people open their modals; wrong people submit copies of them.
    decline = open_modal(bot, CLIENT, "request:1", "Decline")
    changes = open_modal(bot, CLIENT, "work:1:1", "Request changes")
    propose = open_modal(bot, FREELANCER, "contract:1", "Propose changes")
    edit = open_modal_by_command(bot, CLIENT, "edit 2")
    m = Matrix((CHANNEL,))
    client_wrongs = (FREELANCER, *STRANGERS)
    m.commands(client_wrongs, CLIENT_ONLY_COMMANDS, ONLY_CLIENT)
    m.commands((CLIENT, *STRANGERS), ('submit "Again"', "withdraw 1"), (FREELANCER,))
    m.commands(STRANGERS, EDIT_COMMANDS, ONLY_CLIENT)  # "only the client … directly"
    m.commands(STRANGERS, ("start", "agree", "end"), (CLIENT, FREELANCER))
    m.buttons(client_wrongs, "contract:1", ["Approve"], ONLY_CLIENT)
    m.buttons(client_wrongs, "work:1:1", ["Approve"], ONLY_CLIENT)
    m.buttons(client_wrongs, "work:1:1", ["Request changes"], ONLY_CLIENT, opens_modal=True)
    m.buttons(client_wrongs, "request:1", ["Accept"], ONLY_CLIENT)
    m.buttons(client_wrongs, "request:1", ["Decline"], ONLY_CLIENT, opens_modal=True)
    m.buttons((CLIENT, *STRANGERS), "request:1", ["Withdraw"], (FREELANCER,))
    m.buttons(STRANGERS, "contract:1", ["Propose changes"], (FREELANCER,), opens_modal=True)
    m.forged_views(client_wrongs, decline, {"reason": "forged"}, ONLY_CLIENT)
    m.forged_views(client_wrongs, changes, {"note": "forged"}, ONLY_CLIENT)
    m.forged_views(STRANGERS, propose, {"m2_title": "Forged"}, ONLY_CLIENT)
    m.forged_views(STRANGERS, edit, {"title": "Forged"}, ONLY_CLIENT)
    assert attack(bot, m) == 63


def test_every_wrong_person_is_refused_on_an_agency_contract_being_negotiated(bot: Bot) -> None:
    contract_id = agency_negotiating(bot)
    card = f"contract:{contract_id}"
    add = open_modal(bot, MANAGER, card, "Add milestone")
    edit = open_modal_by_command(bot, MANAGER, "edit 1", channel=AGENCY_CHANNEL)
    wrongs = (MEMBER, FREELANCER, *STRANGERS)  # FREELANCER is no party here
    both = (CLIENT, MANAGER)  # while negotiating, either side changes milestones
    m = Matrix((AGENCY_CHANNEL,))
    m.commands(wrongs, ('add "Extra" 100 2030-05-01', "edit 1 amount=99", "delete 2"), both)
    m.commands(wrongs, ("start", "end"), both)
    m.commands((MANAGER, *wrongs), ("fund",), ONLY_CLIENT)
    m.buttons(wrongs, card, ["Agree to terms"], both)
    m.buttons(wrongs, card, ["Add milestone"], both, opens_modal=True)
    m.forged_views(wrongs, add, {"title": "Forged", "amount": "5", "due_date": "2030-06-01"}, both)
    m.forged_views(wrongs, edit, {"title": "Forged"}, both)
    assert attack(bot, m) == 41


def test_every_wrong_person_is_refused_on_an_agency_contract_in_review(bot: Bot) -> None:
    contract_id = agency_in_review(bot)
    card, work, request = f"contract:{contract_id}", f"work:{_first_milestone(bot)}:1", "request:1"
    decline = open_modal(bot, CLIENT, request, "Decline")
    changes = open_modal(bot, CLIENT, work, "Request changes")
    propose = open_modal(bot, MANAGER, card, "Propose changes")
    outsiders = (FREELANCER, *STRANGERS)
    client_wrongs = (MANAGER, MEMBER, *outsiders)
    m = Matrix((AGENCY_CHANNEL,))
    m.commands(client_wrongs, CLIENT_ONLY_COMMANDS, ONLY_CLIENT)
    m.commands((CLIENT, MEMBER, *outsiders), ("withdraw 1",), (MANAGER,))
    m.commands((CLIENT, *outsiders), ('submit "Again"',), (MANAGER,))
    # A member may submit but not propose: their edits are refused, naming the managers.
    m.commands((MEMBER,), ('add "Extra" 100 2030-05-01', "edit 2 amount=1", "delete 2"), (MANAGER,))
    m.commands(outsiders, ('add "Extra" 100 2030-05-01', "edit 2 amount=1"), ONLY_CLIENT)
    m.commands((MEMBER, *outsiders), ("start", "end"), (CLIENT, MANAGER))
    m.buttons(client_wrongs, work, ["Approve"], ONLY_CLIENT)
    m.buttons(client_wrongs, work, ["Request changes"], ONLY_CLIENT, opens_modal=True)
    m.buttons(client_wrongs, request, ["Accept"], ONLY_CLIENT)
    m.buttons(client_wrongs, request, ["Decline"], ONLY_CLIENT, opens_modal=True)
    m.buttons((CLIENT, MEMBER, *outsiders), request, ["Withdraw"], (MANAGER,))
    m.buttons((MEMBER, *outsiders), card, ["Propose changes"], (MANAGER,), opens_modal=True)
    m.forged_views(client_wrongs, decline, {"reason": "forged"}, ONLY_CLIENT)
    m.forged_views(client_wrongs, changes, {"note": "forged"}, ONLY_CLIENT)
    m.forged_views((MEMBER,), propose, {"m2_amount": "9999"}, (MANAGER,))
    m.forged_views(outsiders, propose, {"m2_amount": "9999"}, ONLY_CLIENT)
    assert attack(bot, m) == 94


def _first_milestone(bot: Bot) -> int:
    rows = table_rows(bot.runtime.sessions)["milestone"]
    agency_contract = max(row[1] for row in rows)
    return min(row[0] for row in rows if row[1] == agency_contract)


# --- forged payloads --------------------------------------------------------------------------


def two_contracts_in_review(bot: Bot) -> dict[str, int]:
    """Contract 1 (client CLIENT) and contract 2 (client OUTSIDER, same freelancer), each
    with submitted work and a pending request; returns their ids."""
    individual_in_review(bot)
    bot.slack.add_channel(OTHER_CHANNEL, "other", members=[OUTSIDER, FREELANCER, CLIENT])

    def say(user: str, text: str) -> str:
        return command(bot, user, text, channel=OTHER_CHANNEL)

    say(OUTSIDER, f'new "Other" client=<@{OUTSIDER}> freelancer=<@{FREELANCER}>')
    say(OUTSIDER, 'add "Theirs" 700 2030-01-01')
    say(OUTSIDER, 'add "Theirs too" 800 2030-02-01')
    say(OUTSIDER, "start")
    say(FREELANCER, "start")
    assert "Funded" in say(OUTSIDER, "fund")
    say(FREELANCER, 'submit "done"')
    assert "Sent change request #1" in say(FREELANCER, 'edit 2 title="Theirs, renamed"')
    rows = table_rows(bot.runtime.sessions)
    milestone_of = {(r[1], r[2]): r[0] for r in rows["milestone"]}  # (contract, number) → id
    request_of = {(r[1], r[2]): r[0] for r in rows["change_request"]}
    return {
        "m1": milestone_of[(1, 1)],
        "r1": request_of[(1, 1)],
        "m2": milestone_of[(2, 1)],
        "r2": request_of[(2, 1)],
    }


def ref(**ids: int) -> str:
    """A button value or `private_metadata` as the app writes them (short keys)."""
    return json.dumps(ids, separators=(",", ":"))


def meta(**ids: int) -> str:
    """A modal's `private_metadata`: the channel it was opened in, and ids."""
    return json.dumps({"ch": CHANNEL, **ids}, separators=(",", ":"))


def test_button_values_pointing_at_another_contract_are_refused(bot: Bot) -> None:
    ids = two_contracts_in_review(bot)
    work = f"work:{ids['m1']}:1"
    m, r = ids["m2"], ids["r2"]  # contract 2's submitted milestone and pending request
    cases: list[tuple[str, str, str, str, str]] = [
        # (who, card, button, forged value, what the refusal says)
        (CLIENT, "request:1", "Accept", ref(c=1, r=r), "not part of contract 1"),
        (CLIENT, "request:1", "Accept", ref(c=2, r=r), "not a party to contract 2"),
        (OUTSIDER, "request:1", "Accept", ref(c=2, r=ids["r1"]), "not part of contract 2"),
        (CLIENT, work, "Approve", ref(c=1, m=m), "not part of contract 1"),
        (CLIENT, work, "Approve", ref(c=2, m=m), "not a party to contract 2"),
        (OUTSIDER, work, "Approve", ref(c=2, m=ids["m1"]), "not part of contract 2"),
        (CLIENT, "contract:1", "Approve", ref(c=1, m=m), "not part of contract 1"),
        (FREELANCER, "request:1", "Withdraw", ref(c=1, r=r), "not part of contract 1"),
        (FREELANCER, "request:1", "Withdraw", ref(c=2, r=ids["r1"]), "not part of contract 2"),
        (CLIENT, "request:1", "Decline", ref(c=1, r=r), "not part of this contract"),
        (OUTSIDER, "request:1", "Decline", ref(c=2, r=ids["r1"]), "not part of this contract"),
        (CLIENT, "request:1", "Decline", ref(c=2, r=r), "not a party to contract 2"),
        (CLIENT, work, "Request changes", ref(c=1, m=m), "no longer waiting for review"),
        (CLIENT, work, "Request changes", ref(c=2, m=m), "not a party to contract 2"),
        (OUTSIDER, work, "Request changes", ref(c=2, m=ids["m1"]), "no longer waiting"),
        (CLIENT, "contract:1", "Propose changes", ref(c=2), "not a party to contract 2"),
    ]
    failures = []
    for who, card, label, value, expected in cases:
        before = state(bot, (CHANNEL, OTHER_CHANNEL))
        views = len(bot.slack.open_views(who))
        reply = click_reply(bot, who, card, label, value=value)
        settle(0.02)
        if expected not in reply or APOLOGY in reply:
            failures.append(f"{who} {label} {value}: {reply!r}")
        if state(bot, (CHANNEL, OTHER_CHANNEL)) != before:
            failures.append(f"{who} {label} {value}: something changed")
        if len(bot.slack.open_views(who)) != views:
            failures.append(f"{who} {label} {value}: a modal opened")
    assert not failures, "\n".join(failures)


GARBAGE_VALUES = (
    "",
    "null",
    "[]",
    "{}",
    "not json",
    '{"c":1}',
    '{"c":1,"r":999999}',
    '{"c":1,"r":0}',
    '{"c":1,"r":-1}',
    '{"c":1,"r":1.5}',
    '{"c":1,"r":"1; DROP TABLE ledger_entry"}',
    '{"c":1,"r":1,"extra":true}',
    '{"c":1,"m":1}',
    '{"c":1,"r":9223372036854775808}',
    '{"c":1,"r":2147483648}',
    '{"c":1,"r":1e400}',
    '{"c":99999999999999999999999999,"r":1}',
    '{"c":1,"r":1}' + "\u0000",
)


def test_garbage_button_values_are_refused_cleanly(bot: Bot) -> None:
    individual_in_review(bot)
    failures = []
    for value in GARBAGE_VALUES:
        before = state(bot)
        reply = click_reply(bot, CLIENT, "request:1", "Accept", value=value)
        settle(0.02)
        if APOLOGY in reply or not any(
            words in reply for words in ("out of date", "no change request", "not part")
        ):
            failures.append(f"{value!r}: {reply!r}")
        if state(bot) != before:
            failures.append(f"{value!r}: something changed")
    assert not failures, "\n".join(failures)
    # The real button still works afterwards.
    assert "Accepted" in click_reply(bot, CLIENT, "request:1", "Accept")  # the card


def test_private_metadata_pointing_at_another_contract_is_refused(bot: Bot) -> None:
    ids = two_contracts_in_review(bot)
    decline = open_modal(bot, CLIENT, "request:1", "Decline")
    changes = open_modal(bot, CLIENT, f"work:{ids['m1']}:1", "Request changes")
    edit = open_modal_by_command(bot, CLIENT, "edit 2")
    add = open_modal_by_command(bot, CLIENT, "add")
    new_milestone = {"title": "Forged", "amount": "5", "due_date": "2030-06-01"}
    cases: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
        (decline, {"reason": "x"}, meta(c=1, r=ids["r2"]), "not part of contract 1"),
        (decline, {"reason": "x"}, meta(c=2, r=ids["r2"]), "not a party to contract 2"),
        (decline, {"reason": "x"}, meta(c=1), "Say which request"),
        (changes, {"note": "x"}, meta(c=1, m=ids["m2"]), "not part of contract 1"),
        (changes, {"note": "x"}, meta(c=2, m=ids["m2"]), "not a party to contract 2"),
        (edit, {"title": "Forged"}, meta(c=2, n=1), "not a party to contract 2"),
        (edit, {"title": "Forged"}, meta(c=1, n=99), "gone"),
        (add, new_milestone, meta(c=2), "not a party to contract 2"),
        (add, new_milestone, meta(), "out of date"),
        (add, new_milestone, "{not json", "out of date"),
    ]
    failures = []
    for view, inputs, metadata, expected in cases:
        before = state(bot, (CHANNEL, OTHER_CHANNEL))
        response = submit_view_as(bot, CLIENT, view, inputs=inputs, private_metadata=metadata)
        answer = response.json() or {}
        shown = " ".join((answer.get("errors") or {}).values())
        if not shown:  # refused outside the form: told in the channel instead
            settle(0.1)
            shown = " ".join(e.text for e in bot.slack.ephemerals(user=CLIENT)[-1:])
        settle(0.02)
        if expected not in shown or APOLOGY in shown:
            failures.append(f"{view['callback_id']} {metadata}: {answer!r} / {shown!r}")
        if state(bot, (CHANNEL, OTHER_CHANNEL)) != before:
            failures.append(f"{view['callback_id']} {metadata}: something changed")
    assert not failures, "\n".join(failures)
