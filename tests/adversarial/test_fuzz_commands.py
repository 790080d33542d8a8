"""Fuzzing the whole `/milestone` text through the real app over signed HTTP.

Whatever anyone types — unicode (emoji, right-to-left, zero-width), Slack mrkdwn
control sequences, 10,000-character values, amounts at the edges of USD, JPY and KWD
— the app acks with 200 (never a 5xx), answers exactly once and only to the person
who typed (an ephemeral reply, or the form the command opens), never with an
apology, never pings a whole channel from a card, and leaves the database exactly as
it was whenever the answer is not a confirmation.

One bot per test function serves every example (hypothesis examples share its state,
which drifts as valid commands succeed). Examples: `FUZZ_EXAMPLES` (40) by default,
`MILESTONE_FUZZ_EXAMPLES=N` for more.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import date

import pytest
from hypothesis import currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from tests.adversarial.support import APOLOGY, State, settle, state, team_of
from tests.e2e.conftest import CHANNEL, CLIENT, FREELANCER, OUTSIDER, PARTNER, Bot, blocks_text

pytestmark = pytest.mark.e2e

FUZZ_EXAMPLES = int(os.environ.get("MILESTONE_FUZZ_EXAMPLES", "40"))
YEN, DINAR, SCRATCH = "C0YEN", "C0DINAR", "C0SCRATCH"
CHANNELS = (CHANNEL, YEN, DINAR, SCRATCH)
PEOPLE = (CLIENT, FREELANCER, OUTSIDER, PARTNER)

# What a confirmation of a change says (services' outcome summaries). Any reply that
# changed the database must be one of these; an error must change nothing.
CONFIRMATIONS = (
    "created in",
    "added:",
    "updated.",
    "deleted.",
    "Sent change request",
    "You agreed",
    "is active",
    "Funded milestone",
    "Submitted milestone",
    "Approved milestone",
    "Asked for changes",
    "Accepted change request",
    "Declined change request",
    "Withdrew change request",
    "ended.",
)
BROADCAST = re.compile(r"<!(channel|here|everyone)\b|<!subteam\^")

MRKDWN = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S0TEAM|@team>",
    "<!date^1392734382^{date}|Feb 18>",
    f"<@{CLIENT}>",
    f"<@{OUTSIDER}|olga>",
    "<#C0DEALS|deals>",
    "<https://evil.example/|click here>",
    "<mailto:a@b.example|mail>",
    "&amp;",
    "&lt;",
    "&gt;",
    "&lt;!channel&gt;",
    "&lt;@U0CLIENT&gt;",
    "*bold*",
    "_it_",
    "~gone~",
    "`code`",
    "```block```",
    "> quote",
    "<",
    ">",
    "&",
)
UNICODE = (
    "👩‍💻",
    "🇺🇳",
    "💸💸💸",
    "مرحبا بالعالم",
    "שלום עולם",
    "\u202eevil\u202c",
    "\u200b",
    "\u200d",
    "\u200f",
    "\u2066x\u2069",
    "\ufeff",
    "\u00ad",
    "e\u0301",
    "Z̤͔ͧ̑̓",
    "\u3000",
    "１２３",
    "٣٤٥",
    "\n",
    "\t",
    "\r\n",
    "“",
    "”",
    '"',
    "'",
    "=",
    "\\",
    "\x00",  # PostgreSQL can't store NUL in text
)
AMOUNTS = (
    # USD (2 decimals): max, max + 1 minor unit, too many decimals, other spellings
    "10000000",
    "10,000,000.00",
    "$10,000,000.00",
    "10000000.01",
    "10000001",
    "0.01",
    "0.001",
    "1.234",
    "1500 USD",
    "USD 1500",
    "€1500",
    "1.500,50",
    # JPY (no decimals)
    "¥10,000,000",
    "10000000 JPY",
    "1.5",
    "1500.00",
    # KWD (3 decimals)
    "10000000.000",
    "10000000.001",
    "KWD 0.001",
    "0.0001",
    # never amounts
    "0",
    "0.00",
    "-1",
    "\u22125",
    "1e3",
    "NaN",
    "inf",
    "9" * 64,
    "9" * 65,
    "1 500",
    "١٥٠٠",
    "1,50",
)
CURRENCIES = ("USD", "JPY", "KWD", "usd", "XAU", "XXX", "EUR", "ABC", "€", "")

fragment = st.sampled_from(MRKDWN + UNICODE)
free_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
value = st.one_of(
    fragment,
    free_text,
    st.lists(st.one_of(fragment, free_text), min_size=1, max_size=5).map(" ".join),
)
huge = st.sampled_from(
    ("x" * 10_000, "👩‍💻" * 2_000, "<!channel> " * 1_000, "&amp;" * 2_000, "ש" * 10_000)
)
number = st.one_of(
    st.integers(min_value=0, max_value=60).map(str),
    st.sampled_from(("#1", "01", "999999999", "9999999999", "-1", "1.5", "١", "²", "1e2")),
)
due = st.one_of(
    st.dates(min_value=date(2027, 1, 1), max_value=date(2045, 12, 31)).map(date.isoformat),
    st.dates().map(date.isoformat),
    st.sampled_from(("2030-02-30", "tomorrow", "2020-01-01", "9999-12-31", "2030-1-1")),
)
amount = st.one_of(
    st.sampled_from(AMOUNTS), st.sampled_from(("1500", "99.99", "1,250.50", "$20")), free_text
)


def quoted(text: str) -> str:
    return f'"{text}"'


structured = st.one_of(
    st.builds(
        lambda t, a, d, desc: f"add {quoted(t)} {a} {d} {quoted(desc)}", value, amount, due, value
    ),
    st.builds(lambda t, a, d: f'add {quoted(t)} {a} {d} message="{t}"', huge, amount, due),
    st.builds(lambda n, a: f"edit {n} amount={a}", number, amount),
    st.builds(lambda n, t: f"edit {n} title={quoted(t)}", number, st.one_of(value, huge)),
    st.builds(
        lambda n, t, d: f"edit {n} description={quoted(t)} due={d} message={quoted(t)}",
        number,
        st.one_of(value, huge),
        due,
    ),
    st.builds(lambda n, t: f"delete {n} message={quoted(t)}", number, value),
    st.builds(lambda t: f"submit {quoted(t)}", st.one_of(value, huge)),
    st.builds(lambda t: f"changes {quoted(t)}", st.one_of(value, huge)),
    st.builds(lambda n, t: f"decline {n} {quoted(t)}", number, st.one_of(value, huge)),
    st.builds(lambda verb, n: f"{verb} {n}", st.sampled_from(("accept", "withdraw")), number),
    st.sampled_from(("fund", "approve", "start", "agree", "status", "history", "help", "")),
    st.builds(
        lambda t, c: f"new {quoted(t)} client=<@{CLIENT}> freelancer=<@{FREELANCER}> currency={c}",
        st.one_of(value, huge),
        st.sampled_from(CURRENCIES),
    ),
    st.builds(lambda c, rest: f"contract={c} {rest}", number, st.sampled_from(("fund", "status"))),
)
anything = st.one_of(
    free_text,
    st.lists(
        st.one_of(fragment, free_text, st.sampled_from(("add", "edit", "new"))), max_size=8
    ).map(" ".join),
)


@dataclass(frozen=True)
class Typed:
    user: str
    channel: str
    text: str


@st.composite
def typed(draw: st.DrawFn) -> Typed:
    text = draw(st.one_of(structured, structured, anything))
    user = draw(st.sampled_from(PEOPLE))
    # New contracts go to a scratch channel, so the others keep one open contract each.
    channel = SCRATCH if text.startswith("new") else draw(st.sampled_from(CHANNELS))
    return Typed(user, channel, text)


def prepare(bot: Bot) -> None:
    """An active USD contract with a funded milestone, a JPY one being negotiated, an
    active KWD one, and a channel without a contract; all four people in each."""
    for channel in CHANNELS[1:]:
        bot.slack.add_channel(channel, channel.lower(), members=list(PEOPLE))

    def say(user: str, text: str, channel: str = CHANNEL) -> str:
        return bot.reply_to(bot.driver.command(user, text, channel_id=channel))

    for channel, currency in ((CHANNEL, "USD"), (YEN, "JPY"), (DINAR, "KWD")):
        reply = say(
            CLIENT,
            f'new "{currency} deal" client=<@{CLIENT}> freelancer=<@{FREELANCER}> '
            f"currency={currency}",
            channel,
        )
        assert "created" in reply, reply
        for n in (1, 2, 3):
            assert "added" in say(CLIENT, f'add "Part {n}" 1000 2030-0{n}-01', channel)
        if currency != "JPY":
            say(CLIENT, "start", channel)
            say(FREELANCER, "start", channel)
    assert "Funded" in say(CLIENT, "fund")


def one_answer(bot: Bot, typed: Typed) -> tuple[int, str, State]:
    """Type it; return the HTTP status, the single answer's text and the state before."""
    before = state(bot, CHANNELS)
    response = bot.driver.command(
        typed.user,
        typed.text,
        channel_id=typed.channel,
        team_id=team_of(typed.user),
        show_reply=False,
    )
    if response.status != 200:
        return response.status, response.text, before

    def answers() -> list[tuple[str, str]]:
        """(how, text) of every answer: `ephemeral`/`in_channel` replies, opened forms."""
        replies = [
            (
                str(r.body.get("response_type")),
                str(r.body.get("text", "")) + "\n" + blocks_text(r.body.get("blocks") or []),
            )
            for r in bot.slack.responses
            if r.url == response.response_url
        ]
        forms = [
            ("form", "(a form opened)")
            for c in bot.slack.calls_to("views.open")
            if c.params.get("trigger_id") == response.trigger_id
        ]
        return replies + forms

    bot.slack.wait_for(answers, timeout=10, message=f"an answer to {typed.text[:80]!r}")
    settle(0.03)  # a second answer would show up now
    found = answers()
    assert len(found) == 1, f"{len(found)} answers to {typed!r}: {found}"
    how, text = found[0]
    assert how in ("ephemeral", "form"), f"{typed!r} was answered for everyone to see: {text}"
    return response.status, text, before


def check(bot: Bot, typed: Typed, caplog: pytest.LogCaptureFixture) -> str:
    """Type it and check every property; returns the answer."""
    caplog.clear()
    status, answer, before = one_answer(bot, typed)
    assert status == 200, (status, answer)
    assert answer.strip(), f"an empty answer to {typed!r}"
    assert APOLOGY not in answer, f"{typed!r}: {answer}"
    after = state(bot, CHANNELS)
    changed = after.export != before.export or after.rows != before.rows
    if currently_in_test_context():  # hypothesis statistics: how much got through
        event("changed the database" if changed else "changed nothing")
    if changed:
        assert any(word in answer for word in CONFIRMATIONS), (
            f"{typed!r} changed the database but answered: {answer[:300]!r}"
        )
    else:
        assert after == before or any(word in answer for word in CONFIRMATIONS)
    for channel in CHANNELS:
        for message in bot.slack.messages(channel):
            shown = message.text + "\n" + blocks_text(message.blocks)
            assert not BROADCAST.search(shown), f"{typed!r} made a card ping everyone: {shown}"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert "database is locked" not in caplog.text
    return answer


@pytest.fixture(params=["sqlite", "postgresql"])
def any_bot(request: pytest.FixtureRequest) -> Bot:
    """The bot on a SQLite file, then on PostgreSQL (NUL characters, say, differ)."""
    found: Bot = request.getfixturevalue("bot" if request.param == "sqlite" else "pg_bot")
    return found


@settings(max_examples=FUZZ_EXAMPLES)
@given(typed=typed())
def test_any_text_gets_one_clear_ephemeral_answer_and_errors_change_nothing(
    any_bot: Bot, caplog: pytest.LogCaptureFixture, typed: Typed
) -> None:
    if not any_bot.slack.messages(CHANNEL):
        prepare(any_bot)
    check(any_bot, typed, caplog)


# --- amounts at the edges of each currency, deterministically ---------------------------------


EDGES = [
    # (channel, amount, what the answer says; "added" means it is stored)
    (CHANNEL, "10000000", "added"),
    (CHANNEL, "10,000,000.00", "added"),
    (CHANNEL, "$10,000,000.00", "added"),
    (CHANNEL, "10000000.01", "largest amount is 10,000,000 USD"),
    (CHANNEL, "10000001", "largest amount"),
    (CHANNEL, "0.01", "added"),
    (CHANNEL, "0.001", "at most 2 decimals"),
    (CHANNEL, "1.234", "at most 2 decimals"),
    (CHANNEL, "0.00", "more than zero"),
    (CHANNEL, "¥100", "JPY"),
    (YEN, "10000000", "added"),
    (YEN, "¥10,000,000", "added"),
    (YEN, "10000001", "largest amount is 10,000,000 JPY"),
    (YEN, "1.5", "no minor unit"),
    (YEN, "1500.00", "no minor unit"),
    (YEN, "1", "added"),
    (DINAR, "10000000.000", "added"),
    (DINAR, "10000000.001", "largest amount is 10,000,000 KWD"),
    (DINAR, "0.001", "added"),
    (DINAR, "0.0001", "at most 3 decimals"),
    (DINAR, "KWD 1.2345", "at most 3 decimals"),
    (DINAR, "9" * 65, "too long"),
]


def test_amounts_at_the_edges_of_usd_jpy_and_kwd(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    prepare(bot)
    failures = []
    for channel, typed_amount, expected in EDGES:
        typed = Typed(CLIENT, channel, f'add "Edge" {typed_amount} 2030-06-01')
        before = state(bot, CHANNELS)
        answer = check(bot, typed, caplog)
        stored = state(bot, CHANNELS).rows != before.rows
        if expected not in answer or stored != (expected == "added"):
            failures.append(f"{channel} {typed_amount!r}: stored={stored} {answer!r}")
    assert not failures, "\n".join(failures)
    # The largest amounts go through escrow whole: fund the maximum, raise it by a
    # change request to the maximum of another milestone, release everything.
    for user, text, expected in (
        (FREELANCER, 'edit 1 amount="10,000,000"', "Sent change request #1"),
        (CLIENT, "accept 1", "Escrow topped up by $9,999,000.00"),
        (FREELANCER, 'submit "max"', "Submitted milestone 1"),
        (CLIENT, "approve", "Approved milestone 1: $10,000,000.00 released"),
    ):
        answer = check(bot, Typed(user, CHANNEL, text), caplog)
        assert expected in answer, answer
