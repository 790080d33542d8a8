"""Amounts in the person's own number habits (`parse_amount(..., locale=...)`): what each
locale reads, what stays refused, and what is asked about instead of guessed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidAmount
from domain.money import (
    AmbiguousAmount,
    format_amount,
    number_habits,
    parse_amount,
)

MAX_MAJOR = 10_000_000


def parse(text: str, currency: str, locale: str) -> int:
    return parse_amount(text, currency, max_major=MAX_MAJOR, locale=locale)


def refusal(text: str, currency: str, locale: str) -> InvalidAmount:
    with pytest.raises(InvalidAmount) as caught:
        parse(text, currency, locale)
    return caught.value


@pytest.mark.parametrize(
    ("text", "currency", "locale", "minor"),
    [
        # the person's own habits
        ("1.500,00", "EUR", "de-DE", 150_000),
        ("€1.500", "EUR", "de-DE", 150_000),
        ("1.500 €", "EUR", "de-DE", 150_000),
        ("EUR 1.500,50", "EUR", "de-DE", 150_050),
        ("1,50", "EUR", "de-DE", 150),
        ("1.500.000", "EUR", "de-DE", 150_000_000),
        ("1,500.00", "USD", "en-US", 150_000),
        ("$1,500", "USD", "en-US", 150_000),
        ("1,500,000", "USD", "en-US", 150_000_000),
        ("1500.5", "USD", "en-US", 150_050),
        ("1 500,00", "EUR", "fr-FR", 150_000),  # a plain space for the narrow one
        ("1\u202f500,00 €", "EUR", "fr-FR", 150_000),
        ("1\u00a0500", "SEK", "sv-SE", 150_000),
        ("1'500.50", "CHF", "de-CH", 150_050),
        ("1\u2019500", "CHF", "de-CH", 150_000),
        ("1,50,000", "INR", "en-IN", 15_000_000),
        ("1.500", "USD", "de_DE", 150_000),  # Babel's spelling of the locale too
        # separators that can mean only one thing, whatever the locale
        ("1,500.50", "EUR", "de-DE", 150_050),
        ("1.500,50", "USD", "en-US", 150_050),
        ("1,50", "USD", "en-US", 150),
        ("1.5", "EUR", "de-DE", 150),
        ("1500,5", "USD", "en-US", 150_050),
        ("1.500.000", "USD", "en-US", 150_000_000),
        # a currency with three minor digits settles a decimal point in the person's style
        ("1.500", "KWD", "en-US", 1_500),
        ("1,500", "KWD", "de-DE", 1_500),
        ("1,500", "KWD", "en-US", 1_500_000),
        # an unknown locale reads as en-US
        ("1,500", "USD", "xx-YY", 150_000),
        ("1.500", "USD", "es-LA", 150_000),  # Slack's Latin American Spanish: es
    ],
)
def test_amounts_read_in_the_persons_habits(
    text: str, currency: str, locale: str, minor: int
) -> None:
    assert parse(text, currency, locale) == minor


@pytest.mark.parametrize(
    ("text", "currency", "locale", "readings", "typed"),
    [
        ("1.500", "USD", "en-US", ("$1,500.00", "$1.50"), ('"1500"', '"1.50"')),
        ("12.000", "USD", "en-US", ("$12,000.00", "$12.00"), ('"12000"', '"12.00"')),
        ("1,500", "EUR", "de-DE", ("1.500,00\xa0€", "1,50\xa0€"), ('"1500"', '"1,50"')),
        ("1,500", "USD", "de-DE", ("1.500,00\xa0$", "1,50\xa0$"), ('"1500"', '"1,50"')),
        ("1.500", "EUR", "fr-FR", ("1\u202f500,00\xa0€", "1,50\xa0€"), ('"1500"', '"1,50"')),
        ("1,500", "CHF", "de-CH", ("CHF\xa01'500.00", "CHF\xa01.50"), ('"1500"', '"1.50"')),
        ("1.000", "JPY", "en-US", ("¥1,000", "¥1"), ('"1000"', '"1"')),
        ("1.500", "KWD", "fr-FR", ("1\u202f500,000\xa0KWD", "1,500\xa0KWD"), ('"1500"', '"1,500"')),
    ],
)
def test_a_number_with_two_readings_is_asked_about_with_the_text_to_type_for_each(
    text: str, currency: str, locale: str, readings: tuple[str, str], typed: tuple[str, str]
) -> None:
    error = refusal(text, currency, locale)
    assert isinstance(error, AmbiguousAmount)
    message = error.message
    assert message.startswith(f'I can\'t tell what "{text}" means: {readings[0]} (the ')
    assert f"or {readings[1]} (the " in message
    assert f"Type {typed[0]} for {readings[0]}, or {typed[1]} for {readings[1]}." in message
    assert len(error.readings) == 2
    assert "`" not in message  # plain words: a form's error shows them as they are


def test_each_suggested_text_reads_back_as_the_reading_it_names() -> None:
    for text, currency, locale in [
        ("1.500", "USD", "en-US"),
        ("1,500", "EUR", "de-DE"),
        ("1.500", "EUR", "fr-FR"),
        ("1.500", "KWD", "fr-FR"),
        ("1.000", "JPY", "en-US"),
    ]:
        error = refusal(text, currency, locale)
        assert isinstance(error, AmbiguousAmount)
        suggested = [part.split('"')[1] for part in error.message.split("Type ")[1].split(", or ")]
        assert [parse(s, currency, locale) for s in suggested] == list(error.readings)


@pytest.mark.parametrize(
    ("text", "currency", "limit"),
    [
        ("1.234", "USD", "USD amounts have at most 2 decimals"),
        ("1.500", "JPY", "JPY has no minor unit"),
    ],
)
def test_a_second_reading_the_currency_cannot_hold_is_named_and_the_first_offered(
    text: str, currency: str, limit: str
) -> None:
    error = refusal(text, currency, "en-US")
    assert isinstance(error, AmbiguousAmount)
    assert limit in error.message
    thousands = format_amount(parse(text.replace(".", ""), currency, "en-US"), currency)
    assert error.message.endswith(f'Type "{text.replace(".", "")}" for {thousands}.')
    assert len(error.readings) == 1


@pytest.mark.parametrize(
    ("text", "currency", "locale", "reason"),
    [
        ("-1.500,00", "EUR", "de-DE", "can't be negative"),
        ("0,00", "EUR", "de-DE", "more than zero"),
        ("1.500,005", "EUR", "de-DE", "EUR amounts have at most 2 decimals"),
        ("1.500,5", "JPY", "de-DE", "JPY has no minor unit"),
        ("10.000.000,01", "EUR", "de-DE", "largest amount is 10,000,000 EUR"),
        ("1500.", "USD", "en-US", "not a number I can read"),
        ("15,00.50", "USD", "en-US", "not a number I can read"),
        ("1,5,00", "USD", "en-US", "not a number I can read"),
        ("1 500", "USD", "en-US", "without spaces inside it, such as 1500 or 1,500"),
        ("1 500", "EUR", "de-DE", "without spaces inside it, such as 1500 or 1.500"),
        ("€1.500", "USD", "de-DE", "That amount is in EUR but this contract is in USD"),
        ("1e3", "USD", "de-DE", "exponent notation"),
        ("abc", "EUR", "de-DE", "such as 1500 or 1.500,00\xa0€"),
        ("１５００", "EUR", "de-DE", "not a number"),
    ],
)
def test_what_stays_refused_is_refused_in_the_persons_terms(
    text: str, currency: str, locale: str, reason: str
) -> None:
    error = refusal(text, currency, locale)
    assert not isinstance(error, AmbiguousAmount)
    assert reason in error.message


def test_without_a_locale_only_the_english_style_is_read_as_before() -> None:
    assert parse_amount("1,500", "USD", max_major=MAX_MAJOR) == 150_000
    with pytest.raises(InvalidAmount, match="at most 2 decimals"):
        parse_amount("1.500", "USD", max_major=MAX_MAJOR)
    with pytest.raises(InvalidAmount, match="Commas can only separate"):
        parse_amount("1,50", "USD", max_major=MAX_MAJOR)


def test_number_habits_come_from_babel() -> None:
    german = number_habits("de-DE")
    assert (german.locale, german.decimal, german.group) == ("de_DE", ",", ".")
    assert number_habits("en-US").group == ","
    assert " " in number_habits("fr-FR").group_typed
    assert number_habits("nonsense").locale == "en_US"


@pytest.mark.parametrize("locale", ["en-US", "de-DE", "fr-FR", "de-CH", "en-IN", "ja-JP"])
@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY", "KWD"])
def test_an_amount_formatted_in_the_persons_locale_reads_back(locale: str, currency: str) -> None:
    babel = number_habits(locale).locale
    for minor in (1, 150, 150_000, 1_234_567):
        shown = format_amount(minor, currency, locale=babel)
        try:
            assert parse(shown, currency, locale) == minor
        except AmbiguousAmount:
            pass  # e.g. ¥1,500 written "1.500" is asked about, never misread


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="0123456789.,' €$-\u202f\u00a0", max_size=14),
    st.sampled_from(["en-US", "de-DE", "fr-FR", "de-CH", "en-IN"]),
    st.sampled_from(["USD", "EUR", "JPY", "KWD"]),
)
def test_any_text_is_an_amount_or_a_reasoned_refusal(text: str, locale: str, currency: str) -> None:
    try:
        minor = parse(text, currency, locale)
    except InvalidAmount as error:
        assert error.message
    else:
        assert 0 < minor
