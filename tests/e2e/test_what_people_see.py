"""Text people type is shown as text on every surface, whatever it contains.

A hostile title, note or reason (`<!channel>`, `<http://x|y>`, a fake mention, `&lt;`,
bidirectional overrides, 2,000 characters) goes through the real app over signed HTTP:
the confirmation only its author sees, a refusal that quotes it, the cards and
announcements in the channel, the change request's message and the decline's reason,
a form, and App Home. For each, the test reads the mrkdwn the way Slack does (its
`<…>` control sequences, then `&lt; &gt; &amp;`) and checks that the only control
sequences are the bot's own (mentions of the parties, date tokens) and that what the
person typed is displayed as they typed it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import CLIENT, FREELANCER, Bot

HOSTILE = (  # as a person types them (Slack encodes them on the way: `slack_encoded`)
    "@channel",
    "@here",
    "<!channel>",
    "<!here|here>",
    "<!everyone>",
    "<!subteam^S0ADMINS>",
    "<http://evil.example|click here>",
    "<mailto:a@evil.example|mail>",
    f"<@{CLIENT}>",
    "<#C0DEALS|deals>",
    "<!date^1^{date}|today>",
    "*bold*",
    "_it_",
    "~gone~",
    "`code`",
    "&lt;",
    "&amp;",
    "&",
    "<",
    ">",
    "\u202eevil\u202c",  # right-to-left override, then pop
    "\u2067isolate\u2069",
    "\u200f",  # right-to-left mark (kept: it only marks direction)
)
# What the grammar can't carry inside a quoted value: quotes end it.
_PLAIN = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"“”„‟«»\u00a0')
pieces = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(_PLAIN, max_size=12)), min_size=1)
titles = pieces.map(lambda p: " ".join(p)[:200].strip()).filter(lambda t: bool(t.strip()))
notes = st.one_of(
    titles,
    titles.map(lambda t: (t + " ") * (2000 // (len(t) + 1))).map(lambda t: t[:2000].strip()),
)

TOKEN = re.compile(r"<([^<>]*)>")
BROADCAST = re.compile(r"@(channel|here|everyone)\b")
BOTS_OWN = re.compile(r"@U[A-Z0-9]+|#C[A-Z0-9]+(\|[^|]*)?|!date\^[0-9]+\^[^|]*\|[^|]*")
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_channels = itertools.count(1)


def slack_encoded(typed: str) -> str:
    """What Slack sends in a slash command's text for what a person typed (escaping on):
    their own `&`, `<`, `>` as entities, and `@channel`-style words as broadcasts."""
    escaped = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return BROADCAST.sub(r"<!\1>", escaped)


def displayed(mrkdwn: str) -> tuple[str, list[str]]:
    """What Slack shows for `mrkdwn`, and the control sequences it found in it."""
    found: list[str] = []

    def token(match: re.Match[str]) -> str:
        inner = match.group(1)
        found.append(inner)
        if inner.startswith("!date^"):
            return inner.split("|", 1)[1]
        return inner.split("|")[-1]

    text = TOKEN.sub(token, mrkdwn)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"), found


def mrkdwn_texts(node: Any) -> Iterator[str]:
    """Every mrkdwn string in a message, a view or a block list."""
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            yield node["text"]
        for key, value in node.items():
            if key == "text" and isinstance(value, str) and node.get("type") != "plain_text":
                yield value  # a message's top-level text (notifications) is mrkdwn too
            elif key != "text" or not isinstance(value, str):
                yield from mrkdwn_texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from mrkdwn_texts(item)


def shown_safely(node: Any) -> str:
    """Check every mrkdwn text in `node`; all of it as displayed, one text per line."""
    out = []
    for text in mrkdwn_texts(node):
        shown, tokens = displayed(text)
        strangers = [t for t in tokens if not BOTS_OWN.fullmatch(t)]
        assert not strangers, f"control sequences from typed text: {strangers} in {text!r}"
        assert not BIDI_CONTROLS.search(text), f"a direction override reaches Slack: {text!r}"
        out.append(shown)
    return "\n".join(out)


def as_typed(text: str) -> str:
    """How typed text reads once shown: direction overrides dropped, whitespace as one."""
    return " ".join(BIDI_CONTROLS.sub("", text).split())


def shows(surface: str, typed: str, *, at_least: int = 40) -> bool:
    """`surface` displays the start of `typed` (a long text may be shortened with …)."""
    return as_typed(typed)[:at_least] in " ".join(surface.split())


def say(bot: Bot, user: str, text: str, channel: str) -> dict[str, Any]:
    """`/milestone <text>`: the answer's message as the bot sent it (raw mrkdwn)."""
    response = bot.driver.command(user, text, channel_id=channel, show_reply=False)
    assert response.status == 200, response.text
    posts = bot.slack.wait_for(
        lambda: [r for r in bot.slack.responses if r.url == response.response_url],
        message=f"an answer to {text!r}",
    )
    body = posts[-1].body
    assert isinstance(body, dict)
    return body


@settings(  # each example is a whole contract over HTTP: an eighth of the usual count
    max_examples=max(12, settings().max_examples // 8),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(title=titles, note=notes, reason=notes)
def test_typed_text_is_shown_as_text_on_every_surface(
    bot: Bot, title: str, note: str, reason: str
) -> None:
    channel = f"C0HOST{next(_channels):03d}"
    bot.slack.add_channel(channel, channel.lower(), members=[CLIENT, FREELANCER])

    typed_title, typed_note = title, note
    title, note = slack_encoded(title), slack_encoded(note)
    created = say(
        bot, CLIENT, f'new "{title}" client=<@{CLIENT}> freelancer=<@{FREELANCER}>', channel
    )
    assert shows(shown_safely(created), typed_title), created
    added = say(bot, CLIENT, f'add "{title}" 100 2030-01-01 "{note}"', channel)
    assert shows(shown_safely(added), typed_title), added
    shown_safely(say(bot, CLIENT, f'add "Second" 100 "{title}"', channel))  # not a date
    bot.say(CLIENT, "start", channel=channel)
    bot.say(FREELANCER, "start", channel=channel)
    bot.say(CLIENT, "fund", channel=channel)
    revised = slack_encoded(f"{typed_title[:197].strip()} v2")  # still within 200 characters
    bot.say(FREELANCER, f'edit 1 title="{revised}" message="{note}"', channel=channel)
    [request_card] = [
        m for m in bot.slack.messages(channel) if "Change request #1" in str(m.blocks)
    ]
    bot.press(CLIENT, request_card, "Decline")
    bot.slack.wait_for(lambda: bot.slack.open_views(CLIENT))
    shown_safely(bot.slack.open_views(CLIENT)[-1])  # the form quotes the request
    assert bot.driver.submit_view(CLIENT, inputs={"reason": reason[:500]}).status == 200
    bot.quiet()

    channel_shows = "\n".join(
        shown_safely({"text": m.text, "blocks": m.blocks}) for m in bot.slack.messages(channel)
    )
    assert shows(channel_shows, typed_title)  # the contract card and its announcements
    assert shows(channel_shows, typed_note)  # the change request's message
    assert shows(channel_shows, reason[:500])  # the decline's reason, on the request card
    home = shown_safely(bot.open_home(CLIENT))
    assert shows(home, typed_title, at_least=20)
    for ephemeral in bot.slack.ephemerals(channel):
        shown_safely({"text": ephemeral.text, "blocks": ephemeral.blocks})
