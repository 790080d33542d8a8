"""Configuration from the environment (and an optional `.env` file).

`load_settings()` is the one way the processes read their configuration. A missing
or malformed value stops start-up with a `SettingsError` whose message is a single
line naming the variable and what is wrong with it, ready to print as is.
Environment variables win over the `.env` file; names are upper case and
case-sensitive; unknown variables are ignored; blanks around a value are ignored.

Each variable's rule is its type: the annotated types below say what is accepted,
and how a refusal reads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BeforeValidator,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_ENV_FILE = ".env"
DEFAULT_DATABASE_URL = "sqlite:///milestone-bot.sqlite3"

# Upper bounds keep every duration representable as a `timedelta` and every amount,
# in minor units, well inside a 64-bit integer column.
MAX_DAYS = 3650.0
MAX_HOURS = MAX_DAYS * 24
MAX_SWEEP_SECONDS = 86400.0
MAX_AMOUNT_LIMIT = 10**12

_APPS_PAGE = "api.slack.com/apps"
BOT_TOKEN_HELP = (
    "the Bot User OAuth Token, xoxb-…, from your app's OAuth & Permissions page at " + _APPS_PAGE
)
SIGNING_SECRET_HELP = (
    "the Signing Secret from your app's Basic Information → App Credentials at " + _APPS_PAGE
)
APP_TOKEN_HELP = (
    "an app-level token, xapp-…, with the connections:write scope, from your app's "
    "Basic Information → App-Level Tokens at " + _APPS_PAGE
)

CLIENT_ID_HELP = "the Client ID from your app's Basic Information → App Credentials"
CLIENT_SECRET_HELP = "the Client Secret from your app's Basic Information → App Credentials"
ENCRYPTION_KEY_HELP = (
    "one or more comma-separated Fernet keys, newest first, that encrypt stored tokens"
)

_WORKING_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_SLACK_TOKEN_PREFIX_RE = re.compile(r"^(xox[a-z]|xapp)-")
_GOT_MAX_CHARS = 60


class SettingsError(Exception):
    """Configuration that cannot be used; `message` is one line naming the variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WorkingHours(NamedTuple):
    """Local hours, Monday to Friday, into which reminders are shifted."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class HttpCredentials:
    """What HTTP mode needs, as plain strings (kept out of `repr`)."""

    bot_token: str = field(repr=False)
    signing_secret: str = field(repr=False)


@dataclass(frozen=True)
class DistributionCredentials:
    """What distribution (any workspace installs through OAuth) needs, kept out of `repr`."""

    client_id: str
    client_secret: str = field(repr=False)
    signing_secret: str = field(repr=False)
    encryption_keys: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class SocketModeCredentials:
    """What Socket Mode needs, as plain strings (kept out of `repr`)."""

    bot_token: str = field(repr=False)
    app_token: str = field(repr=False)


# ----- how a refusal reads (the variable's name is added by `describe_validation_error`)


def _invalid(reason: str) -> PydanticCustomError:
    # The reason goes in through the context so braces in user input are never formatted.
    return PydanticCustomError("invalid_setting", "{reason}", {"reason": reason})


def _got(value: object) -> str:
    text = repr(value)
    if len(text) > _GOT_MAX_CHARS:
        text = text[: _GOT_MAX_CHARS - 4] + "…" + text[-3:]
    return f"(got {text})"


def _refused_as(explain: Callable[[ErrorDetails], str]) -> WrapValidator:
    """Whatever the rules inside refuse reads `explain(first problem) (got <value>)`.

    The value shown is the one given, before any parsing. Not for secrets.
    """

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            raise _invalid(f"{explain(error.errors()[0])} {_got(value)}") from None

    return WrapValidator(check)


def _saying(reason: str) -> WrapValidator:
    """Any refusal reads `reason (got <value>)`."""
    return _refused_as(lambda _problem: reason)


def _quantity_of(unit: str, *, kind: str = "number") -> WrapValidator:
    """A refused `Field(gt=0, le=…)` quantity reads as being over its maximum, or not positive."""

    def explain(problem: ErrorDetails) -> str:
        if problem["type"] != "less_than_equal":
            return f"must be a positive {kind} of {unit}"
        limit = problem["ctx"]["le"]
        shown = f"{limit:g}" if isinstance(limit, float) else str(limit)  # 3650.0 reads 3650
        return f"must be at most {shown} {unit}"

    return _refused_as(explain)


# For the custom validators below, which raise their own reason: adds the value given.
_WITH_THE_VALUE = _refused_as(lambda problem: problem["msg"])


# ----- the custom rules


def _blank_is_unset(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _upper_case(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _lower_case(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _slack_token(prefix: str, help_text: str) -> AfterValidator:
    """The token must start with `prefix`; a refusal names the kind given, never the token."""

    def check(token: SecretStr) -> SecretStr:
        text = token.get_secret_value()
        if not text.startswith(prefix):
            seen = _SLACK_TOKEN_PREFIX_RE.match(text)
            got = f"a token starting with {seen.group(0)}" if seen else "something else"
            raise _invalid(f"must start with {prefix} (got {got}); use {help_text}")
        return token

    return AfterValidator(check)


_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def _valid_http_url(text: str) -> str:
    """`text` as given, once pydantic parses it as a URL (its host and port are valid)."""
    _HTTP_URL.validate_python(text)
    return text


def _sqlite_or_postgresql(text: str) -> str:
    """A SQLite or PostgreSQL URL, PostgreSQL on the psycopg driver; refusals never echo it."""
    example = "such as sqlite:///milestone-bot.sqlite3 or postgresql://user:password@host/db"
    if not text:
        raise _invalid(f"must be a SQLite or PostgreSQL URL, {example} (got an empty value)")
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        # Never echo the value: it may hold a password.
        raise _invalid(f"is not a valid database URL; expected one {example}") from None
    backend = url.get_backend_name()
    if backend == "postgres":  # the old Heroku-style spelling
        url = url.set(drivername="postgresql")
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql"):
        raise _invalid(f"must be a SQLite or PostgreSQL URL, {example} (got a {backend}:// URL)")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",")] if value.strip() else []
    return value


def _distinct_longest_first(days: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(sorted(set(days), reverse=True))


def _hh_mm_range(value: object) -> object:
    if not isinstance(value, str):
        return value
    match = _WORKING_HOURS_RE.match(value)
    if match is None:
        raise _invalid("expected HH:MM-HH:MM such as 09:00-18:00")
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
        raise _invalid("hours must be 00-23 and minutes 00-59, as in 09:00-18:00")
    return WorkingHours(time(h1, m1), time(h2, m2))


def _start_before_end(hours: WorkingHours) -> WorkingHours:
    if hours.start >= hours.end:
        raise _invalid("the start must be before the end, as in 09:00-18:00")
    return hours


def _fernet_keys(keys: SecretStr | None) -> SecretStr | None:
    """One or more comma-separated Fernet keys; a refusal never echoes a key."""
    from cryptography.fernet import Fernet

    if keys is None:
        return None
    parts = [part.strip() for part in keys.get_secret_value().split(",")]
    for number, part in enumerate(parts, start=1):
        try:
            Fernet(part)
        except ValueError:
            raise _invalid(
                f"key {number} is not a Fernet key (32 url-safe base64-encoded bytes); make one "
                'with python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            ) from None
    return keys


# ----- the types of the settings

#: An empty or blank value counts as not set (on an optional setting).
BlankIsUnset = BeforeValidator(_blank_is_unset)

BotToken = Annotated[SecretStr, _slack_token("xoxb-", BOT_TOKEN_HELP)]
AppToken = Annotated[SecretStr, _slack_token("xapp-", APP_TOKEN_HELP)]

SlackApiUrl = Annotated[
    str,
    Field(pattern=r"^(?i:https?)://[^\s/]\S*$"),  # http(s)://host…, no blanks
    AfterValidator(_valid_http_url),
    _saying("must be an http(s) URL of the Slack Web API, such as http://127.0.0.1:9000/api/"),
]

DatabaseUrl = Annotated[str, AfterValidator(_sqlite_or_postgresql)]

Days = Annotated[float, Field(gt=0, le=MAX_DAYS, allow_inf_nan=False), _quantity_of("days")]
Hours = Annotated[float, Field(gt=0, le=MAX_HOURS, allow_inf_nan=False), _quantity_of("hours")]
Seconds = Annotated[
    float, Field(gt=0, le=MAX_SWEEP_SECONDS, allow_inf_nan=False), _quantity_of("seconds")
]
MajorUnits = Annotated[
    int, Field(gt=0, le=MAX_AMOUNT_LIMIT), _quantity_of("major units", kind="whole number")
]

#: Comma-separated days such as "7,1", kept distinct and longest first; "" for none.
DaysList = Annotated[
    tuple[Days, ...],
    NoDecode,
    BeforeValidator(_comma_separated),
    AfterValidator(_distinct_longest_first),
    _saying(
        "must be comma-separated positive numbers of days, such as 7,1 (or empty for no reminders)"
    ),
]

#: "HH:MM-HH:MM" such as "09:00-18:00", the start before the end.
TimeOfDayRange = Annotated[
    WorkingHours,
    NoDecode,
    BeforeValidator(_hh_mm_range),
    AfterValidator(_start_before_end),
    _WITH_THE_VALUE,
]

LogLevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogLevel = Annotated[
    LogLevelName,
    BeforeValidator(_upper_case),
    _saying(f"must be one of {', '.join(get_args(LogLevelName))}"),
]

PaymentsName = Literal["ledger", "stripe"]
PaymentsSetting = Annotated[
    PaymentsName,
    BeforeValidator(_lower_case),
    _saying("must be ledger (the bot records the money, the parties move it) or stripe"),
]

StripeApiBase = Annotated[
    str,
    Field(pattern=r"^(?i:https?)://[^\s/]\S*$"),
    AfterValidator(_valid_http_url),
    _saying("must be an http(s) URL of a Stripe API server, such as http://127.0.0.1:8420"),
]

PublicUrl = Annotated[
    str,
    Field(pattern=r"^(?i:https?)://[^\s/]\S*$"),
    AfterValidator(_valid_http_url),
    _saying("must be the http(s) address where serve is reached, such as https://bot.example.com"),
]

#: What `PAYMENTS=stripe` needs, and where each comes from.
STRIPE_SETTINGS_HELP = {
    "STRIPE_API_KEY": "the platform's secret key, Stripe Dashboard → Developers → API keys",
    "STRIPE_WEBHOOK_SECRET": (
        "the signing secret of the endpoint <PUBLIC_URL>/stripe/webhook, Stripe Dashboard → "
        "Developers → Webhooks"
    ),
    "PUBLIC_URL": "where serve is reached from a browser: pay and payout links start with it",
}


@dataclass(frozen=True)
class StripeCredentials:
    """What `PAYMENTS=stripe` needs, as plain strings (kept out of `repr`)."""

    api_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    public_url: str
    api_base: str | None = None


class Settings(BaseSettings):
    """Every setting of the bot; field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=DEFAULT_ENV_FILE,
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        frozen=True,
        str_strip_whitespace=True,
    )

    SLACK_BOT_TOKEN: Annotated[BotToken | None, BlankIsUnset] = None
    SLACK_SIGNING_SECRET: Annotated[SecretStr | None, BlankIsUnset] = None
    SLACK_APP_TOKEN: Annotated[AppToken | None, BlankIsUnset] = None
    SLACK_API_URL: Annotated[SlackApiUrl | None, BlankIsUnset] = None
    SLACK_CLIENT_ID: Annotated[str | None, BlankIsUnset] = None
    SLACK_CLIENT_SECRET: Annotated[SecretStr | None, BlankIsUnset] = None
    TOKEN_ENCRYPTION_KEY: Annotated[
        SecretStr | None, BlankIsUnset, AfterValidator(_fernet_keys)
    ] = None
    DATABASE_URL: DatabaseUrl = DEFAULT_DATABASE_URL
    AUTO_RELEASE_DAYS: Days = 14.0
    END_WINDOW_DAYS: Days = 7.0
    REQUEST_REMINDER_FIRST_HOURS: Hours = 24.0
    REQUEST_REMINDER_EVERY_HOURS: Hours = 48.0
    REVIEW_REMINDER_DAYS_BEFORE: DaysList = (7.0, 1.0)
    FUND_REMINDER_HOURS: Hours = 48.0
    WORKING_HOURS: TimeOfDayRange = WorkingHours(time(9, 0), time(18, 0))
    SWEEP_SECONDS: Seconds = 30.0
    SHUTDOWN_SECONDS: Seconds = 10.0
    MAX_AMOUNT: MajorUnits = 10_000_000
    LOG_LEVEL: LogLevel = "INFO"
    PAYMENTS: PaymentsSetting = "ledger"
    STRIPE_API_KEY: Annotated[SecretStr | None, BlankIsUnset] = None
    STRIPE_WEBHOOK_SECRET: Annotated[SecretStr | None, BlankIsUnset] = None
    STRIPE_API_BASE: Annotated[StripeApiBase | None, BlankIsUnset] = None
    PUBLIC_URL: Annotated[PublicUrl | None, BlankIsUnset] = None

    # ----- derived values

    @property
    def auto_release_period(self) -> timedelta:
        """How long submitted work waits for review before it is released automatically."""
        return timedelta(days=self.AUTO_RELEASE_DAYS)

    @property
    def end_window(self) -> timedelta:
        """How long the provider side may accept or dispute a refund after the client ends."""
        return timedelta(days=self.END_WINDOW_DAYS)

    @property
    def request_reminder_first_delay(self) -> timedelta:
        """How long after a change request is made the first nudge is due."""
        return timedelta(hours=self.REQUEST_REMINDER_FIRST_HOURS)

    @property
    def request_reminder_interval(self) -> timedelta:
        """How often an unanswered change request is nudged after the first nudge."""
        return timedelta(hours=self.REQUEST_REMINDER_EVERY_HOURS)

    @property
    def review_reminder_offsets(self) -> tuple[timedelta, ...]:
        """How long before automatic release each review reminder is due, longest first."""
        return tuple(timedelta(days=days) for days in self.REVIEW_REMINDER_DAYS_BEFORE)

    @property
    def fund_reminder_delay(self) -> timedelta:
        """How long after a release the client is nudged to fund the next milestone."""
        return timedelta(hours=self.FUND_REMINDER_HOURS)

    @property
    def log_level(self) -> int:
        """`LOG_LEVEL` as a `logging` level number."""
        return logging.getLevelNamesMapping()[self.LOG_LEVEL]

    # ----- what each mode needs

    def require_http(self) -> HttpCredentials:
        """The credentials HTTP mode needs, or a `SettingsError` naming what to set."""
        missing = []
        if self.SLACK_BOT_TOKEN is None:
            missing.append(f"SLACK_BOT_TOKEN ({BOT_TOKEN_HELP})")
        if self.SLACK_SIGNING_SECRET is None:
            missing.append(f"SLACK_SIGNING_SECRET ({SIGNING_SECRET_HELP})")
        if self.SLACK_BOT_TOKEN is None or self.SLACK_SIGNING_SECRET is None:
            raise SettingsError(_missing_message(missing, mode="HTTP mode"))
        return HttpCredentials(
            bot_token=self.SLACK_BOT_TOKEN.get_secret_value(),
            signing_secret=self.SLACK_SIGNING_SECRET.get_secret_value(),
        )

    @property
    def distribution(self) -> bool:
        """Whether `serve` runs for any workspace that installs it (OAuth) rather than for
        the one workspace of `SLACK_BOT_TOKEN`: any of the distribution settings says so."""
        return any(
            value is not None
            for value in (
                self.SLACK_CLIENT_ID,
                self.SLACK_CLIENT_SECRET,
                self.TOKEN_ENCRYPTION_KEY,
            )
        )

    def require_distribution(self) -> DistributionCredentials:
        """The settings distribution needs, or a `SettingsError` naming what is missing
        (or what is set that does not belong: a bot token is per workspace here)."""
        wanted = {
            "SLACK_CLIENT_ID": (self.SLACK_CLIENT_ID, CLIENT_ID_HELP),
            "SLACK_CLIENT_SECRET": (self.SLACK_CLIENT_SECRET, CLIENT_SECRET_HELP),
            "SLACK_SIGNING_SECRET": (self.SLACK_SIGNING_SECRET, SIGNING_SECRET_HELP),
            "TOKEN_ENCRYPTION_KEY": (self.TOKEN_ENCRYPTION_KEY, ENCRYPTION_KEY_HELP),
        }
        missing = [f"{name} ({hint})" for name, (value, hint) in wanted.items() if value is None]
        if missing:
            raise SettingsError(_missing_message(missing, mode="distribution mode"))
        if self.SLACK_BOT_TOKEN is not None:
            raise SettingsError(
                "SLACK_BOT_TOKEN is set with SLACK_CLIENT_ID: unset SLACK_BOT_TOKEN to run in "
                "distribution mode (each workspace's token comes from its install), or unset "
                "SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and TOKEN_ENCRYPTION_KEY to run in "
                "single-workspace mode"
            )
        assert self.SLACK_CLIENT_ID and self.SLACK_CLIENT_SECRET and self.SLACK_SIGNING_SECRET
        assert self.TOKEN_ENCRYPTION_KEY is not None
        keys = self.TOKEN_ENCRYPTION_KEY.get_secret_value().split(",")
        return DistributionCredentials(
            client_id=self.SLACK_CLIENT_ID,
            client_secret=self.SLACK_CLIENT_SECRET.get_secret_value(),
            signing_secret=self.SLACK_SIGNING_SECRET.get_secret_value(),
            encryption_keys=tuple(key.strip() for key in keys),
        )

    def require_socket_mode(self) -> SocketModeCredentials:
        """The credentials Socket Mode needs, or a `SettingsError` naming what to set."""
        missing = []
        if self.SLACK_BOT_TOKEN is None:
            missing.append(f"SLACK_BOT_TOKEN ({BOT_TOKEN_HELP})")
        if self.SLACK_APP_TOKEN is None:
            missing.append(f"SLACK_APP_TOKEN ({APP_TOKEN_HELP})")
        if self.SLACK_BOT_TOKEN is None or self.SLACK_APP_TOKEN is None:
            raise SettingsError(_missing_message(missing, mode="Socket Mode"))
        return SocketModeCredentials(
            bot_token=self.SLACK_BOT_TOKEN.get_secret_value(),
            app_token=self.SLACK_APP_TOKEN.get_secret_value(),
        )

    def require_payments(self) -> StripeCredentials | None:
        """What the payments provider needs: None for `PAYMENTS=ledger` (nothing), or a
        `SettingsError` naming every Stripe setting that is missing."""
        if self.PAYMENTS == "ledger":
            return None
        wanted = {
            "STRIPE_API_KEY": self.STRIPE_API_KEY,
            "STRIPE_WEBHOOK_SECRET": self.STRIPE_WEBHOOK_SECRET,
            "PUBLIC_URL": self.PUBLIC_URL,
        }
        missing = [
            f"{name} ({STRIPE_SETTINGS_HELP[name]})"
            for name, value in wanted.items()
            if value is None
        ]
        if missing:
            raise SettingsError(_missing_message(missing, mode="PAYMENTS=stripe"))
        assert self.STRIPE_API_KEY and self.STRIPE_WEBHOOK_SECRET and self.PUBLIC_URL
        return StripeCredentials(
            api_key=self.STRIPE_API_KEY.get_secret_value(),
            webhook_secret=self.STRIPE_WEBHOOK_SECRET.get_secret_value(),
            public_url=self.PUBLIC_URL.rstrip("/"),
            api_base=self.STRIPE_API_BASE,
        )


def _missing_message(missing: list[str], *, mode: str) -> str:
    return f"Set {' and '.join(missing)} to run in {mode}"


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each offending variable and what is wrong with it."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        problems.append(f"{name}: {item['msg']}")
    return "; ".join(problems).replace("\n", " ")


def load_settings(*, env_file: str | Path | None = DEFAULT_ENV_FILE) -> Settings:
    """Read the settings from the environment and `env_file` (None: environment only)."""
    try:
        return Settings(_env_file=env_file)
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
    except SourceError as error:
        raise SettingsError(str(error).replace("\n", " ")) from None
