"""Money: ISO 4217 digits, what people may type, and how amounts are shown."""

from __future__ import annotations

import dataclasses
from typing import Any

import iso4217
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import money
from domain.errors import InvalidAmount, InvalidCurrency
from domain.money import (
    MAX_AMOUNT_TEXT_LENGTH,
    Money,
    format_amount,
    format_plain,
    minor_digits,
    normalize_currency,
    parse_amount,
    to_major_str,
)

MAX_MAJOR = 10_000_000
USABLE_CODES = sorted(c.code for c in iso4217.Currency if c.exponent is not None)


def parse(text: str, currency: str = "USD") -> int:
    return parse_amount(text, currency, max_major=MAX_MAJOR)


def refusal(text: str, currency: str = "USD") -> str:
    with pytest.raises(InvalidAmount) as caught:
        parse(text, currency)
    return caught.value.message


# --- currencies -------------------------------------------------------------------


def test_currency_code_is_stripped_and_uppercased() -> None:
    assert normalize_currency(" usd ") == "USD"


def test_unknown_currency_code_is_refused_with_examples_of_real_ones() -> None:
    with pytest.raises(InvalidCurrency) as caught:
        normalize_currency("USX")
    assert caught.value.message == (
        "'USX' is not an ISO 4217 currency code; use a code such as USD, EUR or JPY."
    )


@pytest.mark.parametrize("code", ["", "US", "USDX", "U$D", "<!channel>"])
def test_malformed_currency_code_is_refused(code: str) -> None:
    with pytest.raises(InvalidCurrency, match="not an ISO 4217 currency code"):
        normalize_currency(code)


def test_long_or_markup_currency_code_is_not_echoed_back() -> None:
    with pytest.raises(InvalidCurrency) as caught:
        normalize_currency("<!channel> everyone")
    assert "<" not in caught.value.message


@pytest.mark.parametrize("code", ["XXX", "XAU", "XTS", "XDR"])
def test_currency_without_iso_minor_unit_cannot_be_used_for_contracts(code: str) -> None:
    with pytest.raises(InvalidCurrency, match="no minor unit"):
        normalize_currency(code)


@pytest.mark.parametrize(
    ("code", "digits"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3), ("CLF", 4), ("usd", 2)],
)
def test_minor_digits_come_from_iso_4217(code: str, digits: int) -> None:
    assert minor_digits(code) == digits


def test_minor_digits_refuse_unknown_currency() -> None:
    with pytest.raises(InvalidCurrency):
        minor_digits("USX")


# --- accepted amounts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("1500", "USD", 150_000),
        ("1,500.50", "USD", 150_050),
        ("1500.5", "USD", 150_050),
        ("0.01", "USD", 1),
        ("01500", "USD", 150_000),
        ("1,000,000", "USD", 100_000_000),
        ("  1500\n", "USD", 150_000),
        ("$1,500", "USD", 150_000),
        ("$ 1,500.00", "USD", 150_000),
        ("1500 USD", "USD", 150_000),
        ("1500usd", "USD", 150_000),
        ("USD 1500", "USD", 150_000),
        ("usd1500", "USD", 150_000),
        ("US$1,500", "USD", 150_000),
        ("us$1,500", "USD", 150_000),
        ("$1,500 USD", "USD", 150_000),
        ("€1,500", "EUR", 150_000),
        ("1500 €", "EUR", 150_000),
        ("EUR 1,500.25", "EUR", 150_025),
        ("¥1500", "JPY", 1500),
        ("￥1,500", "JPY", 1500),
        ("1500 JPY", "JPY", 1500),
        ("KWD 1.5", "KWD", 1500),
        ("1.234 KWD", "KWD", 1234),
        ("BHD 0.001", "BHD", 1),
        ("1.2345 CLF", "CLF", 12345),
        ("¥1500", "CNY", 150_000),
        ("$1500", "CAD", 150_000),
        ("1500 kr", "SEK", 150_000),
        ("R$ 1500", "BRL", 150_000),
    ],
)
def test_amount_is_accepted_in_every_documented_form(
    text: str, currency: str, expected: int
) -> None:
    assert parse(text, currency) == expected


def test_amount_copied_from_formatted_right_to_left_text_is_accepted() -> None:
    # Babel's ar_KW output wraps the number in bidi marks and uses a no-break space.
    assert parse("\u200f1,500.000\xa0د.ك.\u200f", "KWD") == 1_500_000


def test_amount_with_zero_width_space_reads_as_it_looks() -> None:
    assert parse("1\u200b500") == 150_000


def test_contract_currency_may_be_given_in_any_case() -> None:
    assert parse("1500", "usd") == 150_000


# --- refused amounts --------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\u200f"])
def test_empty_amount_is_refused(text: str) -> None:
    assert "empty" in refusal(text)


@pytest.mark.parametrize(
    "text", ["abc", "NaN", "nan", "inf", "-Infinity", "∞", "１５００", "١٥٠٠", "1.500.000", "1500."]
)
def test_text_that_is_not_a_number_is_refused(text: str) -> None:
    assert "not a number" in refusal(text)


def test_refusal_for_not_a_number_gives_an_example_in_the_contract_currency() -> None:
    assert "¥1,500" in refusal("abc", "JPY")


@pytest.mark.parametrize("text", ["1e3", "1E+3", "2.5e-3", "1500 e2", "$1e3"])
def test_exponent_notation_is_refused(text: str) -> None:
    assert "exponent" in refusal(text)


@pytest.mark.parametrize("text", ["-1500", "-$1,500", "$-1500", "USD -5", "- 5", "\u22121500"])
def test_negative_amount_is_refused(text: str) -> None:
    assert "negative" in refusal(text)


@pytest.mark.parametrize("text", ["0", "0.00", "$0", "000"])
def test_zero_amount_is_refused(text: str) -> None:
    assert "more than zero" in refusal(text)


def test_fraction_of_a_currency_without_minor_unit_is_refused() -> None:
    assert refusal("1500.5", "JPY") == (
        "JPY has no minor unit, so 1500.5 can't be used; enter a whole number."
    )


def test_trailing_zero_decimals_count_as_decimals() -> None:
    assert "no minor unit" in refusal("1500.00", "JPY")
    assert "at most 2 decimals" in refusal("1.500", "USD")


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("1500.505", "USD", "USD amounts have at most 2 decimals"),
        ("1.5005", "KWD", "KWD amounts have at most 3 decimals"),
        ("1.5005", "BHD", "BHD amounts have at most 3 decimals"),
        ("1.23456", "CLF", "CLF amounts have at most 4 decimals"),
    ],
)
def test_more_decimals_than_the_currency_has_are_refused(
    text: str, currency: str, reason: str
) -> None:
    assert reason in refusal(text, currency)


@pytest.mark.parametrize("text", ["1,50,0", "1500,50", "1,5", "0,500", "1,5000", "15,00.50"])
def test_malformed_thousands_separators_are_refused(text: str) -> None:
    assert "groups of three digits" in refusal(text)


@pytest.mark.parametrize("text", ["1 500", "1\xa0500", "1 500 USD"])
def test_spaces_inside_the_number_are_refused(text: str) -> None:
    assert "without spaces" in refusal(text)


@pytest.mark.parametrize(
    ("text", "currency", "other"),
    [
        ("€1,500", "USD", "EUR"),
        ("1500 EUR", "USD", "EUR"),
        ("eur 1500", "USD", "EUR"),
        ("¥1500", "USD", "JPY"),
        ("£20", "USD", "GBP"),
        ("CA$1500", "USD", "CAD"),
        ("R$ 1500", "USD", "BRL"),
        ("$1500", "EUR", "USD"),
        ("1500 USD", "JPY", "USD"),
        ("1500 XAU", "USD", "XAU"),
    ],
)
def test_amount_in_another_currency_is_refused_naming_both(
    text: str, currency: str, other: str
) -> None:
    message = refusal(text, currency)
    assert f"That amount is in {other} but this contract is in {currency}" in message


def test_unknown_currency_mark_is_refused_showing_the_accepted_ones() -> None:
    message = refusal("1500 kr", "EUR")
    assert "not an amount in EUR" in message
    assert "EUR or €" in message


def test_superscript_and_other_lookalikes_are_not_read_as_digits() -> None:
    assert "not an amount in USD" in refusal("1²")


@pytest.mark.parametrize(
    "text", ["1" * (MAX_AMOUNT_TEXT_LENGTH + 1), "1" + " " * MAX_AMOUNT_TEXT_LENGTH, "x" * 10**6]
)
def test_very_long_input_is_refused_before_parsing(text: str) -> None:
    assert "too long" in refusal(text)


def test_input_at_the_length_cap_is_parsed() -> None:
    text = "5".rjust(MAX_AMOUNT_TEXT_LENGTH)
    assert parse(text) == 500


def test_invalid_contract_currency_is_refused_as_a_currency_error() -> None:
    with pytest.raises(InvalidCurrency):
        parse("1500", "USX")


def test_max_major_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        parse_amount("1", "USD", max_major=0)


# --- the largest amount -----------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "at_max", "one_unit_more"),
    [
        ("USD", "10,000,000", "10,000,000.01"),
        ("EUR", "10000000.00", "10000000.01"),
        ("JPY", "10000000", "10000001"),
        ("KWD", "10000000.000", "10000000.001"),
        ("CLF", "10000000", "10000000.0001"),
    ],
)
def test_exactly_the_largest_amount_is_accepted_and_one_minor_unit_more_refused(
    currency: str, at_max: str, one_unit_more: str
) -> None:
    assert parse(at_max, currency) == MAX_MAJOR * 10 ** minor_digits(currency)
    assert f"the largest amount is 10,000,000 {currency}" in refusal(one_unit_more, currency)


def test_absurdly_large_amount_is_refused_not_rounded() -> None:
    assert "largest amount" in refusal("9" * 60)
    assert "largest amount" not in refusal("10000000.001")  # decimals are the first problem


def test_largest_amount_follows_the_configured_limit() -> None:
    assert parse_amount("500", "USD", max_major=500) == 50_000
    with pytest.raises(InvalidAmount, match="the largest amount is 500 USD"):
        parse_amount("500.01", "USD", max_major=500)


# --- display ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (150_000, "USD", "$1,500.00"),
        (150_000, "EUR", "€1,500.00"),
        (1500, "JPY", "¥1,500"),
        (1_500_000, "KWD", "KWD1,500.000"),
        (1, "BHD", "BHD0.001"),
        (12345, "CLF", "CLF1.2345"),
        (-150_000, "USD", "-$1,500.00"),
        (-1, "USD", "-$0.01"),
        (0, "JPY", "¥0"),
    ],
)
def test_format_amount_uses_babel_with_exactly_the_iso_digits(
    amount: int, currency: str, expected: str
) -> None:
    assert format_amount(amount, currency) == expected


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [("IQD", 1234, "IQD1.234"), ("RSD", 150_000, "RSD1,500.00"), ("AFN", 5, "AFN0.05")],
)
def test_iso_digits_win_where_babel_disagrees(currency: str, amount: int, expected: str) -> None:
    assert format_amount(amount, currency) == expected
    assert parse(expected, currency) == amount


def test_format_amount_follows_the_locale() -> None:
    assert format_amount(150_000, "EUR", locale="de_DE") == "1.500,00\xa0€"
    assert format_amount(1500, "JPY", locale="ja_JP") == "￥1,500"


def test_format_amount_keeps_huge_amounts_exact() -> None:
    amount = 10**40 + 1
    assert format_amount(amount, "USD").endswith("000,000.01")


def test_format_amount_asks_babel_once_per_amount_currency_and_locale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[object] = []
    real = money.format_currency

    def counting(*args: Any, **kwargs: Any) -> str:
        asked.append(args[:2])
        return real(*args, **kwargs)

    monkeypatch.setattr(money, "format_currency", counting)
    amount = 7_777_777_001  # formatted by no other test

    assert format_amount(amount, "USD") == format_amount(amount, "USD") == "$77,777,770.01"
    assert format_amount(amount, "EUR", locale="de_DE") == "77.777.770,01\xa0€"
    assert format_amount(amount, "EUR", locale="de_DE") == "77.777.770,01\xa0€"
    assert len(asked) == 2


def test_a_remembered_amount_still_refuses_bools_and_floats() -> None:
    assert format_amount(1, "USD") == "$0.01"
    with pytest.raises(TypeError):
        format_amount(True, "USD")
    with pytest.raises(TypeError):
        format_amount(1.0, "USD")  # type: ignore[arg-type]


def test_an_unknown_currency_is_refused_every_time_it_is_formatted() -> None:
    for _ in range(2):
        with pytest.raises(InvalidCurrency):
            format_amount(100, "USX")


@pytest.mark.parametrize(
    ("amount", "currency", "plain", "major"),
    [
        (150_000, "USD", "1,500.00 USD", "1500.00"),
        (1500, "JPY", "1,500 JPY", "1500"),
        (1_500_000, "KWD", "1,500.000 KWD", "1500.000"),
        (1, "CLF", "0.0001 CLF", "0.0001"),
        (-50, "USD", "-0.50 USD", "-0.50"),
        (0, "EUR", "0.00 EUR", "0.00"),
    ],
)
def test_plain_and_major_forms_are_exact_and_unambiguous(
    amount: int, currency: str, plain: str, major: str
) -> None:
    assert format_plain(amount, currency) == plain
    assert to_major_str(amount, currency) == major


@pytest.mark.parametrize("function", [format_amount, format_plain, to_major_str])
def test_formatting_refuses_anything_but_int_minor_units(function: object) -> None:
    with pytest.raises(TypeError):
        function(1500.0, "USD")  # type: ignore[operator]
    with pytest.raises(TypeError):
        function(True, "USD")  # type: ignore[operator]


@pytest.mark.parametrize("currency", USABLE_CODES)
def test_every_usable_currency_round_trips_through_all_three_forms(currency: str) -> None:
    amount = 123_456_789
    for text in (
        format_amount(amount, currency),
        format_plain(amount, currency),
        to_major_str(amount, currency),
    ):
        assert parse_amount(text, currency, max_major=10**9) == amount


# --- Money ------------------------------------------------------------------------


def test_money_shows_as_formatted_amount() -> None:
    assert str(Money(150_000, "USD")) == "$1,500.00"


def test_money_normalizes_its_currency() -> None:
    assert Money(1, " usd ") == Money(1, "USD")


def test_money_adds_and_subtracts_within_one_currency() -> None:
    assert Money(150_000, "USD") + Money(50, "USD") == Money(150_050, "USD")
    assert Money(100, "USD") - Money(250, "USD") == Money(-150, "USD")


def test_money_refuses_to_mix_currencies() -> None:
    with pytest.raises(ValueError, match="USD with EUR"):
        _ = Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(ValueError):
        _ = Money(1, "USD") - Money(1, "EUR")


def test_money_refuses_floats_and_unknown_currencies() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidCurrency):
        Money(1, "USX")


def test_money_is_immutable() -> None:
    money = Money(1, "USD")
    with pytest.raises(dataclasses.FrozenInstanceError):
        money.amount_minor = 2  # type: ignore[misc]


# --- properties -------------------------------------------------------------------

ROUND_TRIP_CODES = ["USD", "EUR", "JPY", "KWD"]
amounts_in_range = st.sampled_from(ROUND_TRIP_CODES).flatmap(
    lambda code: st.tuples(st.just(code), st.integers(1, MAX_MAJOR * 10 ** minor_digits(code)))
)


@given(case=amounts_in_range)
def test_major_string_parses_back_to_the_same_amount(case: tuple[str, int]) -> None:
    currency, amount = case
    assert parse(to_major_str(amount, currency), currency) == amount


@given(case=amounts_in_range)
def test_formatted_amount_parses_back_to_the_same_amount(case: tuple[str, int]) -> None:
    currency, amount = case
    assert parse(format_amount(amount, currency), currency) == amount
    assert parse(format_plain(amount, currency), currency) == amount


number_like_text = st.text(alphabet=st.sampled_from("0123456789.,-+eE $€¥US D\xa0\u200f"))


@given(
    text=st.one_of(st.text(), number_like_text),
    currency=st.sampled_from([*ROUND_TRIP_CODES, "CLF", "XAU", "usx"]),
)
def test_parsing_arbitrary_text_only_ever_refuses_with_a_domain_error(
    text: str, currency: str
) -> None:
    try:
        amount = parse(text, currency)
    except (InvalidAmount, InvalidCurrency) as error:
        assert error.message
    else:
        assert 1 <= amount <= MAX_MAJOR * 10 ** minor_digits(currency)


@given(currency=st.text())
def test_arbitrary_currency_text_is_refused_only_as_invalid_currency(currency: str) -> None:
    try:
        normalize_currency(currency)
    except InvalidCurrency as error:
        assert error.message
