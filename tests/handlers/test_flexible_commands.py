"""`release`, `bonus` and `extend`: the shape of what people type (no Slack, no
database), and that `/milestone help` shows them with examples that parse."""

from __future__ import annotations

import re
from datetime import date

import pytest

from handlers.grammar import (
    USAGE,
    CommandSyntaxError,
    ExtendReview,
    PayBonus,
    ReleasePart,
    help_text,
    parse,
)

TODAY = date(2026, 12, 6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("release 2 500", ReleasePart(number=2, amount="500")),
        ("release #2 $1,500.50", ReleasePart(number=2, amount="$1,500.50")),
        ("release 1 500 USD", ReleasePart(number=1, amount="500 USD")),
        ("release 1 USD 500 contract=4", ReleasePart(number=1, amount="USD 500", contract_id=4)),
        ("release 3 amount=250", ReleasePart(number=3, amount="250")),
    ],
)
def test_release_takes_a_milestone_number_and_an_amount(text: str, expected: ReleasePart) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("release", "Which milestone?"),
        ("release 2", "Amount is missing."),
        ("release two 500", "is not a milestone number"),
        ("release 2 500 now", "takes a milestone number and an amount"),
    ],
)
def test_release_refusals_say_what_is_wrong_and_show_the_usage(text: str, words: str) -> None:
    with pytest.raises(CommandSyntaxError) as caught:
        parse(text)
    assert words in caught.value.message
    assert caught.value.message.endswith(USAGE["release"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bonus 200", PayBonus(amount="200")),
        ('bonus $200 "Quick turnaround"', PayBonus(amount="$200", note="Quick turnaround")),
        ('bonus 200 note="Great work"', PayBonus(amount="200", note="Great work")),
        ("bonus 1,000 EUR", PayBonus(amount="1,000 EUR")),
    ],
)
def test_bonus_takes_an_amount_and_an_optional_note(text: str, expected: PayBonus) -> None:
    assert parse(text) == expected


def test_a_bonus_note_is_plain_text_with_slack_escaping_undone() -> None:
    parsed = parse('bonus 200 "Thanks &lt;3 &amp; <!here>"')
    assert parsed == PayBonus(amount="200", note="Thanks <3 & @here")


def test_bonus_without_an_amount_is_refused() -> None:
    with pytest.raises(CommandSyntaxError) as caught:
        parse("bonus")
    assert caught.value.message.endswith(USAGE["bonus"])


@pytest.mark.parametrize(
    ("text", "days"),
    [("extend", None), ("extend 10", 10), ("extend 3 days", 3), ("extend 1 day", 1)]
    + [("extend 5d", 5), ("extend days=4", 4)],
)
def test_extend_takes_an_optional_number_of_days(text: str, days: int | None) -> None:
    assert parse(text) == ExtendReview(days=days)


@pytest.mark.parametrize("text", ["extend soon", "extend 0", "extend 3 weeks", "extend -2"])
def test_extend_refuses_anything_but_a_number_of_days(text: str) -> None:
    with pytest.raises(CommandSyntaxError) as caught:
        parse(text)
    assert caught.value.message.endswith(USAGE["extend"])


def test_help_shows_release_bonus_and_extend_with_examples_that_parse() -> None:
    guide = help_text(TODAY)
    examples = re.findall(r"`/milestone ((?:release|bonus|extend)[^`]*)`", guide)
    assert {example.split()[0] for example in examples} == {"release", "bonus", "extend"}
    for example in examples:
        assert isinstance(parse(example), ReleasePart | PayBonus | ExtendReview)
    assert "Give more time" in guide and "at most twice" in guide
