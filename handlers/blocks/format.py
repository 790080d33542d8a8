"""Text for Slack surfaces: mrkdwn escaping, dates, money, mentions, packing.

Every string a person typed (titles, descriptions, messages, notes, reasons, agency
names) goes through `escape` (or `clip`, which escapes and shortens) before it is put
into mrkdwn, so `<!channel>` or `<@U…>` typed into a title shows as text and pings
nobody. Bot-made text (amounts, dates, mentions of party ids) is not escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime

from domain import when
from domain.model import SYSTEM_ACTOR
from domain.money import format_amount
from domain.text import Command, Person, Said, counted

SECTION_LIMIT = 3000  # section text (Slack)
FIELD_LIMIT = 2000  # one section field (Slack; slack_sdk does not check it)
CONTEXT_LIMIT = 2000  # one context element (mrkdwn text)
ELLIPSIS = "…"

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SPACES = re.compile(r"\s+")
_CODE_THEN_DIGIT = re.compile(r"^(-?[A-Z]{2,3})([0-9])")


# Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): typed
# into a title, an override would reverse the bot's own words after it ("$1,000" read
# backwards). Dropped wherever typed text is shown; the marks U+200E/U+200F, which only
# say which way a neutral character runs, are kept for right-to-left writers.
_DIRECTION_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def inert(text: str) -> str:
    """Typed text as it may be shown anywhere, plain or mrkdwn: without direction controls."""
    return text.translate(_DIRECTION_CONTROLS)


def escape(text: str) -> str:
    """Typed text for mrkdwn: the three control characters escaped (`&` first), and
    `inert`; nothing else."""
    return inert(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, *, one_line: bool = False) -> str:
    """`escape(text)`, shortened with "…" so the *escaped* text has at most `limit` chars.

    Cuts between characters of the original text, never inside an entity such as
    `&amp;`. With `one_line`, runs of whitespace (newlines too) become one space.
    """
    text = inert(text)
    if one_line:
        text = _SPACES.sub(" ", text).strip()
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    size = 0
    for char in text:
        piece = _ESCAPES.get(char, char)
        if size + len(piece) > limit - len(ELLIPSIS):
            break
        out.append(piece)
        size += len(piece)
    return "".join(out).rstrip() + ELLIPSIS


def shorten(text: str, limit: int) -> str:
    """Shorten mrkdwn (already escaped) to `limit` characters with "…".

    Never cuts inside a `<…>` token (mention, date) or an `&…;` entity.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    opening = cut.rfind("<")
    if opening > cut.rfind(">"):
        cut = cut[:opening]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp <= 5:
        cut = cut[:amp]
    return cut.rstrip() + ELLIPSIS


def quote(text: str, limit: int) -> str:
    """A user-typed text as an escaped mrkdwn block quote (every line starts with `>`)."""
    body = clip(text.strip(), limit - 2 * (text.count("\n") + 1))
    return "\n".join(f">{line}" for line in body.splitlines() or [""])


def as_utc(moment: datetime) -> datetime:
    """A timezone-aware UTC instant (a naive value is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def instant(dt: datetime, fmt: str = "{date_short_pretty} at {time}") -> str:
    """A Slack date token: each reader sees `dt` in their own time zone.

    The fallback (notifications, old clients) is the instant in UTC,
    e.g. `<!date^1796205600^{date_short_pretty} at {time}|Tue 1 Dec 2026 10:00 UTC>`.
    """
    utc = as_utc(dt)
    fallback = f"{due(utc.date())} {utc:%H:%M} UTC"
    return f"<!date^{int(utc.timestamp())}^{fmt}|{fallback}>"


def due(day: date) -> str:
    """A calendar date exactly as stored, e.g. "Tue 1 Dec 2026" (never time-zone shifted)."""
    return when.spell(day)


def due_iso(value: str | date | None) -> str:
    """`due` for a date in export form ("2026-12-01"); odd values are shown escaped."""
    if value is None:
        return "no date"
    if isinstance(value, date):
        return due(value)
    try:
        return due(date.fromisoformat(value))
    except (TypeError, ValueError):
        return escape(str(value))


def money(amount_minor: int, currency: str) -> str:
    """An amount for people: "$1,500.00", "¥1,500", "KWD 1,500.000" (a code gets a space)."""
    return _CODE_THEN_DIGIT.sub("\\1\u00a0\\2", format_amount(amount_minor, currency), count=1)


def signed_money(amount_minor: int, currency: str) -> str:
    """A difference: "+$500.00" / "−$200.00"."""
    sign = "+" if amount_minor >= 0 else "\u2212"
    return sign + money(abs(amount_minor), currency)


def user(user_id: str) -> str:
    """A mention of a Slack user id: `<@U123>`."""
    return f"<@{user_id}>"


def actor(user_id: str) -> str:
    """Who did something: a mention, or "milestone-bot" for the system."""
    if user_id == SYSTEM_ACTOR:
        return "milestone-bot"
    return user(user_id)


def users(user_ids: Iterable[str], *, conjunction: str = "and") -> str:
    """E.g. "<@A>", "<@A> and <@B>", "<@A>, <@B> and <@C>"."""
    return join_words([user(u) for u in user_ids], conjunction=conjunction)


def join_words(words: list[str], *, conjunction: str = "and") -> str:
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


plural = counted  # "1 milestone", "3 milestones" (domain.text.counted)


def pack(lines: Iterable[str], *, limit: int = SECTION_LIMIT, sep: str = "\n") -> list[str]:
    """Group lines into texts of at most `limit` characters (a line too long is cut)."""
    return [text for text, _ in pack_counted(lines, limit=limit, sep=sep)]


def pack_counted(
    lines: Iterable[str], *, limit: int = SECTION_LIMIT, sep: str = "\n"
) -> list[tuple[str, int]]:
    """`pack`, with how many of the given lines went into each text."""
    texts: list[tuple[str, int]] = []
    current = ""
    count = 0
    for raw in lines:
        line = shorten(raw, limit)
        if count and len(current) + len(sep) + len(line) <= limit:
            current = current + sep + line
            count += 1
            continue
        if count:
            texts.append((current, count))
        current, count = line, 1
    if count:
        texts.append((current, count))
    return texts


def said_mrkdwn(what: Said | str) -> str:
    """What the domain said (domain.text), as mrkdwn: every word escaped (a title someone
    typed shows as text, never as a link or a broadcast), people as mentions, commands
    as code. A plain string is words, escaped the same way."""
    parts = what.parts if isinstance(what, Said) else (what,)
    out: list[str] = []
    for part in parts:
        if isinstance(part, Person):
            out.append(user(part.user_id))
        elif isinstance(part, Command):
            out.append(f"`{escape(str(part))}`")
        else:
            out.append(escape(part))
    return "".join(out)


def said_plain(what: Said | str, *, name_of: Callable[[str], str] | None = None) -> str:
    """What the domain said, as plain text (a form's error, a notification's text):
    people by name (`name_of`, else "@id"), commands as typed."""
    parts = what.parts if isinstance(what, Said) else (what,)
    out: list[str] = []
    for part in parts:
        if isinstance(part, Person):
            out.append(f"@{name_of(part.user_id)}" if name_of else str(part))
        else:
            out.append(inert(str(part)))
    return "".join(out)
