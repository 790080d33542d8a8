"""`/milestone notify channel|dm|both|digest`: the grammar, the help, the answer."""

from __future__ import annotations

from datetime import date

import pytest

from domain.model import Notify
from handlers.blocks.direct import build_notify_answer
from handlers.grammar import ChooseNotifications, CommandSyntaxError, help_text, parse


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("notify channel", "channel"),
        ("notify dm", "dm"),
        ("notify DM", "dm"),
        ("notify both", "both"),
        ("notify digest", "digest"),
        ("notify", None),
    ],
)
def test_notify_reads_the_choice(text: str, choice: str | None) -> None:
    assert parse(text) == ChooseNotifications(choice=choice)


def test_a_mistyped_choice_is_refused_with_a_suggestion_and_the_usage() -> None:
    with pytest.raises(CommandSyntaxError) as refused:
        parse("notify digets")
    message = str(refused.value)
    assert "Did you mean `digest`?" in message
    assert "/milestone notify channel|dm|both|digest" in message


def test_notify_takes_one_word() -> None:
    with pytest.raises(CommandSyntaxError):
        parse("notify dm digest")


def test_help_documents_notify_with_an_example() -> None:
    guide = help_text(date(2026, 12, 7))
    assert "`/milestone notify digest`" in guide and "09:00 on weekdays" in guide


@pytest.mark.parametrize("choice", list(Notify))
def test_the_answer_says_what_was_chosen_and_what_it_means(choice: Notify) -> None:
    answer = build_notify_answer(choice, changed=True).as_kwargs()
    text = " ".join(str(block) for block in answer["blocks"])
    assert f"*{choice.value}*" in text
    assert ("No direct messages" in text) == (choice == Notify.CHANNEL)
    assert ("09:00" in text) == (choice == Notify.DIGEST)
    assert "already" in str(build_notify_answer(choice, changed=False).as_kwargs())
