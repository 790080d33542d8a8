"""Exact money: integer minor units of an ISO 4217 currency, parsed and shown with Babel.

Minor-unit digits come from ISO 4217 (the `iso4217` package), never from CLDR, so
parsing, storage and display always agree. No floats anywhere.

How amounts are typed (`parse_amount`):
- English number style only: ASCII digits, a dot for decimals, and optionally a
  comma between groups of three digits (`1500`, `1,500.50`, `1500.5`). Spaces,
  apostrophes or dots as group separators, comma decimals, other digit systems,
  exponent notation, NaN and infinity are refused. `1,500` is always one thousand
  five hundred, never one and a half.
- At most as many decimals as the currency has, even trailing zeros: `1500.00` is
  refused for JPY and `1.500` for USD, so a European `1.500` is never read as 1.50.
- The contract's currency may stand before or after the number, with or without a
  space: its code in any case (`USD 1500`, `1500 usd`) or one of its symbols as
  Babel spells them in a few common locales and in the locales of the territories
  that use it (`$`, `US$`, `€`, `¥`, `￥`; `$` for a CAD contract, `kr` for SEK).
  A code or symbol of another currency is refused, naming both currencies.
- Invisible marks (bidi marks, zero-width spaces) are ignored, so amounts copied
  from formatted text parse; `format_amount` output in `en_US` always parses back.

Locale amounts (`parse_amount(..., locale="de-DE")`, the person's Slack locale): the
number is read in the person's own habits, with Babel's strict `parse_decimal`, and
the English style above still works for everyone. Currency marks, decimals, limits and
refusals are as above.
- A number whose separators can mean only one thing is read so: `1.500,00` and
  `1,500.00` (two kinds of separator: the last is the decimal point), `1.500.000` and
  `1,500,000` (one kind, repeated: groups of three), `1,50` and `1500.5` (not three
  digits after the only separator: a decimal point), the locale's own grouping
  (`1,50,000` in `en_IN`, `1 500` with a space for `fr_FR`, `1'500.50` for `de_CH`).
- One dot or comma with one to three digits before it (no leading zero) and exactly
  three after (`1.500`, `12,000`) is one and a half or fifteen hundred. The person's
  locale settles it when that separator is its group symbol (`1,500` for `en-US`,
  `1.500` or `€1.500` for `de-DE`: fifteen hundred), or when it is its decimal symbol
  and the currency has at least three minor digits (`1.500` KWD for `en-US`: one and a
  half). Otherwise it is asked about, not guessed: `AmbiguousAmount` names both
  readings and the exact text to type for each (`1500`, `1.50`).
"""

from __future__ import annotations

import copy
import decimal
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import iso4217
from babel.core import Locale, UnknownLocaleError, get_global
from babel.numbers import (
    NumberFormatError,
    NumberPattern,
    format_currency,
    format_decimal,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    parse_decimal,
)

from domain.errors import InvalidAmount, InvalidCurrency

MAX_AMOUNT_TEXT_LENGTH = 64
"""Amount texts longer than this are refused before any other work."""

# Locales whose spelling of currency symbols is accepted, besides the currency's own
# territories. The first two rank first when naming the currency of a foreign symbol.
_PRIMARY_SYMBOL_LOCALES = ("en", "en_US")
_SYMBOL_LOCALES = (
    *_PRIMARY_SYMBOL_LOCALES,
    "en_GB",
    "en_CA",
    "en_AU",
    "en_IN",
    "de_DE",
    "fr_FR",
    "es_ES",
    "pt_BR",
    "ja_JP",
    "zh_Hans_CN",
)
_INVISIBLE = dict.fromkeys(
    map(
        ord,
        "\u200b\u200c\u200d\u200e\u200f\u061c\u2060\ufeff\u202a\u202b\u202c\u202d\u202e"
        "\u2066\u2067\u2068\u2069",
    )
)
_MINUS_SIGNS = "-\u2212"
_NUMBER = re.compile(r"[0-9][0-9.,]*")
_WELL_FORMED = re.compile(r"(?P<int>[0-9]+|[1-9][0-9]{0,2}(?:,[0-9]{3})+)(?:\.(?P<frac>[0-9]+))?")
_COMMA_GROUPED = re.compile(r"[0-9][0-9,]*(?:\.[0-9]+)?")
_EXPONENT = re.compile(r"\s*[eE][+-]?[0-9]")
_DIGIT = re.compile(r"[0-9]")
_ISO_CODE = re.compile(r"[A-Z]{3}")
# One dot or comma with up to three digits before and exactly three after: `1.500` is
# one and a half, or fifteen hundred.
_AMBIGUOUS = re.compile(r"([1-9][0-9]{0,2})([.,])([0-9]{3})")
_SEPARATOR_NAMES = {".": "dot", ",": "comma"}
_SPACE_GROUPS = frozenset({" ", "\u00a0", "\u202f"})
_APOSTROPHE_GROUPS = frozenset({"'", "\u2019"})
_SHOWABLE_CODE = re.compile(r"[A-Z0-9]{1,8}")
_ALL_CODES = frozenset(currency.code for currency in iso4217.Currency)
_USABLE_CODES = frozenset(c.code for c in iso4217.Currency if c.exponent is not None)


def normalize_currency(code: str) -> str:
    """Return the ISO 4217 code for `code` (stripped, uppercased); refuse unusable ones."""
    cleaned = code.strip().upper()
    shown = f"'{cleaned}'" if _SHOWABLE_CODE.fullmatch(cleaned) else "That"
    if not _ISO_CODE.fullmatch(cleaned) or cleaned not in _ALL_CODES:
        raise InvalidCurrency(
            f"{shown} is not an ISO 4217 currency code; use a code such as USD, EUR or JPY."
        )
    if cleaned not in _USABLE_CODES:
        raise InvalidCurrency(
            f"{cleaned} has no minor unit in ISO 4217 (it is a metal, fund or test code), "
            "so a contract can't use it; use a code such as USD, EUR or JPY."
        )
    return cleaned


@functools.lru_cache(maxsize=256)
def minor_digits(currency: str) -> int:
    """Digits of the currency's minor unit per ISO 4217 (USD 2, JPY 0, KWD 3)."""
    exponent = iso4217.Currency(normalize_currency(currency)).exponent
    assert exponent is not None  # normalize_currency refuses codes without one
    return exponent


def parse_amount(text: str, currency: str, *, max_major: int, locale: str | None = None) -> int:
    """Parse what a person typed into minor units of `currency` (see the module doc).

    Without `locale`, only the English number style is read. With the person's locale
    (Slack's `en-US`, `de-DE`, or Babel's `de_DE`), the number is read in their own
    habits (`Locale amounts` in the module doc); an unknown locale reads as `en_US`.

    Raises `InvalidAmount` with a reason for the person (`AmbiguousAmount` when a
    number could mean two amounts), `InvalidCurrency` if `currency` itself is unusable.
    """
    if len(text) > MAX_AMOUNT_TEXT_LENGTH:
        raise InvalidAmount(
            f"That amount is too long; use at most {MAX_AMOUNT_TEXT_LENGTH} characters, "
            "such as 1500 or 1,500.50."
        )
    code = normalize_currency(currency)
    digits = minor_digits(code)
    if max_major < 1:
        raise ValueError("max_major must be at least 1")
    habits = None if locale is None else number_habits(locale)
    example = _example(code) if habits is None else _example_in(code, habits.locale)
    cleaned = text.translate(_INVISIBLE).strip()
    if not cleaned:
        raise InvalidAmount(f"The amount is empty; enter a number such as {example}.")
    found = (_NUMBER if habits is None else habits.number).search(cleaned)
    if found is None:
        raise InvalidAmount(f"That is not a number; enter an amount such as {example}.")
    number = found.group()
    before, after = cleaned[: found.start()].strip(), cleaned[found.end() :]
    if _EXPONENT.match(after):
        raise InvalidAmount("Write the amount in full, without exponent notation such as 1e3.")
    if _DIGIT.search(after):
        grouped = "1,500" if habits is None else habits.grouped_example
        raise InvalidAmount(
            f"Write the number without spaces inside it, such as 1500 or {grouped}."
        )
    negative = before.startswith(tuple(_MINUS_SIGNS)) or before.endswith(tuple(_MINUS_SIGNS))
    if negative:
        before = before.strip(_MINUS_SIGNS)
    _check_currency_mark(before, code)
    _check_currency_mark(after, code)

    if habits is None:
        value, fraction_digits = _read_english(number, code, digits)
    else:
        value, fraction_digits = _read_in_habits(number, habits, code, digits)
    if negative:
        raise InvalidAmount("An amount can't be negative.")
    if fraction_digits > digits:
        if digits == 0:
            raise InvalidAmount(
                f"{code} has no minor unit, so {number} can't be used; enter a whole number."
            )
        raise InvalidAmount(
            f"{code} amounts have at most {digits} decimal{'s' if digits > 1 else ''}, "
            f"so {number} can't be used."
        )
    if value == 0:
        raise InvalidAmount("The amount must be more than zero.")
    if value > max_major:
        raise InvalidAmount(f"That is too large: the largest amount is {max_major:,} {code}.")
    with decimal.localcontext() as context:
        context.prec = len(number) + digits + 2
        context.traps[decimal.Inexact] = True
        return int(value.scaleb(digits))


def _read_english(number: str, code: str, digits: int) -> tuple[Decimal, int]:
    """The house style: `1500`, `1,500`, `1,500.50`. The value and its typed decimals."""
    shape = _WELL_FORMED.fullmatch(number)
    if shape is None:
        if _COMMA_GROUPED.fullmatch(number):
            decimals_hint = "; use a dot for decimals, as in 1500.50" if digits else ""
            raise InvalidAmount(
                f"Commas can only separate groups of three digits, as in 1,500,000{decimals_hint}."
            )
        raise InvalidAmount(f"That is not a number; enter an amount such as {_example(code)}.")
    fraction = shape["frac"] or ""
    return Decimal(f"{shape['int'].replace(',', '')}.{fraction or '0'}"), len(fraction)


# --- amounts in the person's own habits ------------------------------------------------


@dataclass(frozen=True, slots=True)
class NumberHabits:
    """How a locale writes numbers: its decimal and group symbols (and what people type
    for the group symbol: a space for a narrow no-break space, `'` for `’`)."""

    locale: str  # Babel's identifier, e.g. "de_DE"
    decimal: str
    group: str
    group_typed: frozenset[str]
    number: re.Pattern[str]  # finds the number in the text, group symbols included
    grouped_example: str  # 1500 with its group symbol, e.g. "1.500"


@functools.lru_cache(maxsize=256)
def number_habits(locale: str) -> NumberHabits:
    """The number habits of `locale` (`de-DE` or `de_DE`); `en_US` when Babel doesn't
    know it (nor its language alone)."""
    identifier = locale.strip().replace("-", "_")
    found: Locale | None = None
    for attempt in (identifier, identifier.split("_")[0], "en_US"):
        try:
            found = Locale.parse(attempt)
            break
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    assert found is not None  # en_US always parses
    name = str(found)
    decimal_symbol = get_decimal_symbol(name)
    group = get_group_symbol(name)
    typed = {group}
    for alike in (_SPACE_GROUPS, _APOSTROPHE_GROUPS):
        if group in alike:
            typed |= alike
    extra = "".join(sorted(re.escape(symbol) for symbol in typed - {".", ","}))
    pattern = r"[0-9](?:[0-9.,]" + (f"|[{extra}](?=[0-9])" if extra else "") + ")*"
    return NumberHabits(
        locale=name,
        decimal=decimal_symbol,
        group=group,
        group_typed=frozenset(typed),
        number=re.compile(pattern),
        grouped_example=format_decimal(1500, locale=name).replace("\u202f", " "),
    )


def _read_in_habits(
    number: str, habits: NumberHabits, code: str, digits: int
) -> tuple[Decimal, int]:
    """Read `number` as the person writes numbers (the module doc's rules). The value and
    the decimals typed."""
    normalized = number
    for symbol in habits.group_typed:
        normalized = normalized.replace(symbol, habits.group)
    if normalized.isdigit():
        return Decimal(normalized), 0
    ambiguous = _AMBIGUOUS.fullmatch(normalized)
    if ambiguous is not None:
        head, separator, tail = ambiguous.groups()
        if separator == habits.group and separator != habits.decimal:
            return Decimal(head + tail), 0
        if separator == habits.decimal and digits >= 3:
            return Decimal(f"{head}.{tail}"), len(tail)
        raise _ambiguous(number, head, separator, tail, habits, code, digits)
    if normalized[-1].isdigit():
        for convention in dict.fromkeys((habits.locale, "en_US", "de_DE")):
            try:
                value = parse_decimal(normalized, locale=convention, strict=True)
            except NumberFormatError:
                continue
            exponent = value.as_tuple().exponent
            return value, -exponent if isinstance(exponent, int) and exponent < 0 else 0
    raise InvalidAmount(
        f"That is not a number I can read; enter an amount such as "
        f"{_example_in(code, habits.locale)}."
    )


class AmbiguousAmount(InvalidAmount):
    """A number that could mean two amounts (`1.500`: one and a half, or fifteen
    hundred); the person is asked which, with the exact text to type for each."""

    def __init__(self, message: str, *, readings: tuple[int, ...]) -> None:
        super().__init__(message)
        self.readings = readings  # the amounts it could mean, in minor units


def _ambiguous(
    number: str, head: str, separator: str, tail: str, habits: NumberHabits, code: str, digits: int
) -> AmbiguousAmount:
    name = _SEPARATOR_NAMES[separator]
    thousands = int(head + tail) * 10**digits
    as_thousands = format_amount(thousands, code, locale=habits.locale)
    fraction = Decimal(f"{head}.{tail}")
    with decimal.localcontext() as context:
        context.prec = 20
        kept = fraction.quantize(Decimal(1).scaleb(-digits), rounding=decimal.ROUND_DOWN)
    opening = (
        f'I can\'t tell what "{number}" means: {as_thousands} (the {name} separating thousands)'
    )
    if kept != fraction:
        limit = (
            f"{code} has no minor unit"
            if digits == 0
            else f"{code} amounts have at most {digits} decimal{'s' if digits > 1 else ''}"
        )
        return AmbiguousAmount(
            f"{opening}, or {head}.{tail} with the {name} as decimal point, but {limit}. "
            f'Type "{head}{tail}" for {as_thousands}.',
            readings=(thousands,),
        )
    small = int(kept.scaleb(digits))
    as_fraction = format_amount(small, code, locale=habits.locale)
    typed_fraction = head if digits == 0 else f"{head}{habits.decimal}{tail[:digits]}"
    return AmbiguousAmount(
        f"{opening} or {as_fraction} (the {name} as decimal point). "
        f'Type "{head}{tail}" for {as_thousands}, or "{typed_fraction}" for {as_fraction}.',
        readings=(thousands, small),
    )


def _example_in(code: str, locale: str) -> str:
    return f"1500 or {format_amount(1500 * 10 ** minor_digits(code), code, locale=locale)}"


def format_amount(amount_minor: int, currency: str, *, locale: str = "en_US") -> str:
    """Format for people with Babel, always with exactly the ISO digits ("$1,500.00")."""
    _require_int(amount_minor)
    return _format_amount(amount_minor, currency, locale)


# A card or Home shows the same few amounts over and over (a contract's milestones, its
# total and escrow), so Babel formats each (amount, currency, locale) once.
@functools.lru_cache(maxsize=4096)
def _format_amount(amount_minor: int, currency: str, locale: str) -> str:
    code = normalize_currency(currency)
    digits = minor_digits(code)
    value = Decimal(to_major_str(amount_minor, code))
    with decimal.localcontext() as context:
        context.prec = max(context.prec, len(str(abs(amount_minor))) + digits + 2)
        return format_currency(
            value,
            code,
            format=_currency_pattern(locale, digits),
            locale=locale,
            currency_digits=False,
        )


def format_plain(amount_minor: int, currency: str) -> str:
    """Unambiguous form for confirmations and logs: "1,500.00 USD", "-0.50 USD"."""
    _require_int(amount_minor)
    code = normalize_currency(currency)
    whole, fraction = _split(amount_minor, minor_digits(code))
    sign = "-" if amount_minor < 0 else ""
    return f"{sign}{whole:,}{fraction} {code}"


def to_major_str(amount_minor: int, currency: str) -> str:
    """Plain major units, e.g. "1500.00", to prefill inputs; parses back with `parse_amount`."""
    _require_int(amount_minor)
    whole, fraction = _split(amount_minor, minor_digits(currency))
    sign = "-" if amount_minor < 0 else ""
    return f"{sign}{whole}{fraction}"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units with its currency; adds and subtracts within one currency."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        _require_int(self.amount_minor)
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    def __add__(self, other: Money) -> Money:
        return Money(self.amount_minor + self._same_currency(other).amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount_minor - self._same_currency(other).amount_minor, self.currency)

    def __str__(self) -> str:
        return format_amount(self.amount_minor, self.currency)

    def _same_currency(self, other: Money) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"can't combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"can't combine {self.currency} with {other.currency}")
        return other


def _require_int(amount_minor: int) -> None:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"amounts are int minor units, not {type(amount_minor).__name__}")


def _split(amount_minor: int, digits: int) -> tuple[int, str]:
    """Whole major units and ".fraction" (empty for 0 digits) of abs(amount_minor)."""
    whole, rest = divmod(abs(amount_minor), 10**digits)
    return whole, f".{rest:0{digits}d}" if digits else ""


def _example(code: str) -> str:
    return f"1500 or {format_amount(1500 * 10 ** minor_digits(code), code)}"


def _check_currency_mark(mark: str, code: str) -> None:
    """Accept an empty mark or one of `code`'s own; refuse another currency's or junk."""
    key = _symbol_key(mark)
    if not key or key in _own_symbols(code):
        return
    others: tuple[str, ...]
    if key.upper() in _ALL_CODES:
        others = (key.upper(),)
    else:
        others = _foreign_symbols().get(key, ())
    if len(others) == 1:
        raise InvalidAmount(
            f"That amount is in {others[0]} but this contract is in {code}; enter it in {code}."
        )
    if others:
        choices = f"{', '.join(others[:-1])} or {others[-1]}"
        raise InvalidAmount(
            f"{mark.strip()} could be {choices}, but this contract is in {code}; "
            f"enter the amount in {code}."
        )
    symbol = get_currency_symbol(code, "en_US")
    marks = f"{code} or {symbol}" if symbol != code else code
    raise InvalidAmount(
        f"That is not an amount in {code}; write a number, optionally with {marks}, "
        f"such as {_example(code)}."
    )


def _symbol_key(symbol: str) -> str:
    return symbol.translate(_INVISIBLE).strip().casefold()


@functools.cache
def _own_symbols(code: str) -> frozenset[str]:
    """Casefolded code and symbols of `code`, from common and home-territory locales."""
    locales: list[Locale | str] = [*_SYMBOL_LOCALES, *_home_locales(code)]
    symbols = {code, *(get_currency_symbol(code, locale) for locale in locales)}
    return frozenset(_symbol_key(symbol) for symbol in symbols)


@functools.cache
def _foreign_symbols() -> dict[str, tuple[str, ...]]:
    """Casefolded symbol -> the currencies it stands for, primary locales ranking first."""
    table: dict[str, tuple[str, ...]] = {}
    for tier in (_PRIMARY_SYMBOL_LOCALES, _SYMBOL_LOCALES):
        found: dict[str, set[str]] = {}
        for locale in tier:
            symbols: dict[str, str] = dict(Locale.parse(locale).currency_symbols.items())
            for code, symbol in symbols.items():
                if code in _USABLE_CODES:
                    found.setdefault(_symbol_key(symbol), set()).add(code)
        for key, codes in found.items():
            table.setdefault(key, tuple(sorted(codes)))
    return table


def _home_locales(code: str) -> list[Locale]:
    """The most likely locale of each territory where `code` is legal tender today."""
    territories: Mapping[str, list[tuple[Any, ...]]] = get_global("territory_currencies")
    likely: Mapping[str, str] = get_global("likely_subtags")
    locales: list[Locale] = []
    for territory, tenders in territories.items():
        if not any(t[0] == code and t[2] is None and t[3] for t in tenders):
            continue
        # CLDR leaves out territories whose likely language is the default, English.
        identifier = likely.get(f"und_{territory}", f"en_{territory}")
        try:
            locales.append(Locale.parse(identifier))
        except (UnknownLocaleError, ValueError):
            continue
    return locales


@functools.lru_cache(maxsize=64)
def _currency_pattern(locale: str, digits: int) -> NumberPattern:
    """The locale's standard currency pattern with its fraction fixed to `digits`."""
    pattern: NumberPattern = copy.copy(Locale.parse(locale).currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return pattern
