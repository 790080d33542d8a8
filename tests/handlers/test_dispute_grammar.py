"""`/milestone end`, `dispute` and `settle`: their shape, and the guide's examples."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.grammar import (
    USAGE,
    CommandSyntaxError,
    DisputeMilestone,
    EndContract,
    SettleDispute,
    help_text,
    parse,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('dispute "Not what we agreed"', DisputeMilestone(reason="Not what we agreed")),
        ("dispute Not what we agreed", DisputeMilestone(reason="Not what we agreed")),
        ('dispute 2 "Pages missing"', DisputeMilestone(number=2, reason="Pages missing")),
        ('dispute #2 reason="Pages missing"', DisputeMilestone(number=2, reason="Pages missing")),
        (
            'dispute "Pages missing" contract=7',
            DisputeMilestone(reason="Pages missing", contract_id=7),
        ),
        ("settle 1 600", SettleDispute(number=1, amount="600")),
        ("settle 1 $1,200.50", SettleDispute(number=1, amount="$1,200.50")),
        ("settle 1 600 USD", SettleDispute(number=1, amount="600 USD")),
        ("settle 3 0", SettleDispute(number=3, amount="0")),
        ("settle 3 amount=250", SettleDispute(number=3, amount="250")),
        ("end", EndContract()),
    ],
)
def test_end_dispute_and_settle_parse(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("dispute", "the reason is required"),
        ("dispute 2", "the reason is required"),
        ('dispute 2 ""', "The reason is empty."),
        ("settle", "Which milestone?"),
        ("settle 1", "How much goes to the provider?"),
        ("settle one 500", "is not a milestone number"),
        ("settle 1 500 now", "not `now`"),
        ("end now", "takes no other words"),
    ],
)
def test_malformed_end_dispute_and_settle_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(CommandSyntaxError) as caught:
        parse(text)

    assert says in caught.value.message
    assert caught.value.message.endswith(USAGE[text.split()[0]])


def test_the_guide_documents_ending_disputes_and_settling_with_examples() -> None:
    guide = help_text(date(2026, 12, 7))

    assert "`/milestone end`" in guide and "*End contract*" in guide
    assert "*Accept refund*" in guide and "*Dispute*" in guide
    assert '`/milestone dispute 2 "' in guide
    assert "`/milestone settle 2 600`" in guide and "*Agree to split*" in guide
    assert USAGE["dispute"] == '`/milestone dispute [<n>] "<reason>"`'
    assert USAGE["settle"] == "`/milestone settle <n> <amount-to-provider>`"
