"""handlers.people.plain_amount: the one reading of a typed amount, for commands and
forms alike: in the person's locale, their profile asked for only when the number has
separators, a refusal naming the input it is about."""

from __future__ import annotations

import pytest

from domain.errors import InvalidAmount
from domain.money import AmbiguousAmount
from handlers.blocks.fields import form_errors
from handlers.ids import View
from handlers.people import Habits, plain_amount


class Profile:
    """A person's habits, counting how often they are asked for."""

    def __init__(self, locale: str | None) -> None:
        self.locale = locale
        self.asked = 0

    def __call__(self) -> Habits:
        self.asked += 1
        return Habits("Europe/Berlin", self.locale)


@pytest.mark.parametrize(
    ("typed", "locale", "plain"),
    [
        ("1.500,00", "de-DE", "1500.00"),
        ("€1.500", "de-DE", "1500.00"),
        ("1,500.50", "en-US", "1500.50"),
        ("1,500", None, "1500.00"),  # an unknown locale reads as en-US
    ],
)
def test_an_amount_with_separators_is_read_in_the_persons_locale(
    typed: str, locale: str | None, plain: str
) -> None:
    profile = Profile(locale)
    assert plain_amount(typed, "EUR", habits=profile, max_major=10**9) == plain
    assert profile.asked == 1


def test_plain_digits_are_passed_on_as_typed_without_asking_for_the_profile() -> None:
    profile = Profile("de-DE")
    assert plain_amount("1500", "EUR", habits=profile, max_major=10**9) == "1500"
    assert profile.asked == 0


def test_a_refusal_names_the_amount_of_its_milestone_so_a_form_shows_it_there() -> None:
    with pytest.raises(AmbiguousAmount) as refused:
        plain_amount("1,500", "EUR", habits=Profile("de-DE"), max_major=10**9, milestone=2)

    assert (refused.value.field, refused.value.milestone) == ("amount_minor", 2)
    assert len(refused.value.readings) == 2
    assert list(form_errors(View.PROPOSE, refused.value)) == ["m2_amount"]
    assert list(form_errors(View.EDIT_MILESTONE, refused.value)) == ["amount"]


def test_a_refused_new_amount_is_shown_at_the_new_milestones_amount() -> None:
    with pytest.raises(InvalidAmount) as refused:
        plain_amount("1.500,5,0", "EUR", habits=Profile("de-DE"), max_major=10**9)

    assert list(form_errors(View.PROPOSE, refused.value)) == ["new_amount"]
    assert list(form_errors(View.ADD_MILESTONE, refused.value)) == ["amount"]
