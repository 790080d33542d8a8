from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from domain.text import Command, Person, said
from handlers.blocks.format import (
    clip,
    due,
    escape,
    instant,
    money,
    pack,
    pack_counted,
    plural,
    quote,
    said_mrkdwn,
    said_plain,
    shorten,
    user,
    users,
)


def test_escape_replaces_ampersand_first_and_nothing_else() -> None:
    assert escape("<!channel> & <@U1> *bold* _it_ \"q\" 'a'") == (
        "&lt;!channel&gt; &amp; &lt;@U1&gt; *bold* _it_ \"q\" 'a'"
    )
    assert escape("&amp;") == "&amp;amp;"


def test_clip_never_cuts_inside_an_entity_and_respects_the_escaped_limit() -> None:
    text = "&" * 50
    clipped = clip(text, 22)
    assert len(clipped) <= 22
    assert clipped == "&amp;" * 4 + "…"
    assert clip("short", 10) == "short"
    assert clip("a\n\n b\tc", 20, one_line=True) == "a b c"


def test_quote_prefixes_every_line_and_escapes() -> None:
    assert quote("hi <!here>\nsecond", 100) == ">hi &lt;!here&gt;\n>second"


def test_instant_is_a_date_token_with_a_utc_fallback() -> None:
    moment = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert instant(moment) == (
        "<!date^1796119200^{date_short_pretty} at {time}|Tue 1 Dec 2026 10:00 UTC>"
    )
    shifted = moment.astimezone(timezone(timedelta(hours=-5)))
    assert instant(shifted) == instant(moment)
    assert instant(moment, "{date_num}") == "<!date^1796119200^{date_num}|Tue 1 Dec 2026 10:00 UTC>"


def test_due_dates_are_calendar_dates_shown_as_is() -> None:
    assert due(date(2026, 12, 1)) == "Tue 1 Dec 2026"
    assert due(date(2027, 1, 31)) == "Sun 31 Jan 2027"


def test_money_uses_the_currency_digits() -> None:
    assert money(150_000, "USD") == "$1,500.00"
    assert money(1500, "JPY") == "¥1,500"
    assert money(1_500_000, "KWD") == "KWD\xa01,500.000"


def test_plural_and_mentions() -> None:
    assert plural(1, "milestone") == "1 milestone"
    assert plural(3, "change") == "3 changes"
    assert plural(2, "party", "parties") == "2 parties"
    assert user("U1") == "<@U1>"
    assert users(["U1", "U2", "U3"]) == "<@U1>, <@U2> and <@U3>"
    assert users(["U1", "U2"], conjunction="or") == "<@U1> or <@U2>"


def test_pack_groups_lines_under_the_limit() -> None:
    lines = ["x" * 40] * 10
    texts = pack(lines, limit=100)
    assert all(len(t) <= 100 for t in texts)
    assert sum(t.count("x" * 40) for t in texts) == 10
    assert [n for _, n in pack_counted(lines, limit=100)] == [2] * 5
    assert pack(["y" * 150], limit=100) == ["y" * 99 + "…"]


def test_what_the_domain_said_renders_people_and_commands_and_escapes_every_word() -> None:
    typed = "<!channel> <https://x.y|x> & <@U9>"
    what = said("Only ", Person("U1"), f" can fund ({typed}); type ", Command("fund"), ".")

    assert said_mrkdwn(what) == (
        "Only <@U1> can fund (&lt;!channel&gt; &lt;https://x.y|x&gt; &amp; &lt;@U9&gt;); "
        "type `/milestone fund`."
    )
    assert said_plain(what, name_of={"U1": "carol"}.get) == (  # type: ignore[arg-type]
        f"Only @carol can fund ({typed}); type /milestone fund."
    )
    assert said_mrkdwn("a <b> & c") == "a &lt;b&gt; &amp; c"


def test_shorten_never_breaks_a_token_or_an_entity() -> None:
    token = "<!date^1796119200^{date}|Tue 1 Dec 2026 10:00 UTC>"
    assert shorten("abc " + token, 20) == "abc…"
    assert shorten("abc &amp; def", 8) == "abc…"
    assert shorten("abc &amp; def", 10) == "abc &amp;…"


def test_direction_overrides_typed_in_text_never_reach_slack() -> None:
    typed = "Logo \u202eevil\u202c \u2067x\u2069 \u200fמילה"
    assert escape(typed) == "Logo evil x \u200fמילה"  # the right-to-left mark is kept
    assert said_plain(said(typed)) == "Logo evil x \u200fמילה"
    assert clip(typed * 50, 40).startswith("Logo evil x")


def test_counts_take_the_plural_form_cldr_gives_them() -> None:
    assert [plural(n, "milestone") for n in (0, 1, 2, 1000)] == [
        "0 milestones",
        "1 milestone",
        "2 milestones",
        "1,000 milestones",
    ]
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(3, "entry", "entries") == "3 entries"
