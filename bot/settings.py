"""Configuration from the environment (and an optional `.env` file).

`load_settings()` is the one way the processes read their configuration. A missing
or malformed value stops start-up with a `SettingsError` whose message is a single
line naming the variable and what is wrong with it, ready to print as is.
Environment variables win over the `.env` file; names are upper case and
case-sensitive; unknown variables are ignored.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
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
class SocketModeCredentials:
    """What Socket Mode needs, as plain strings (kept out of `repr`)."""

    bot_token: str = field(repr=False)
    app_token: str = field(repr=False)


def _got(value: object) -> str:
    text = repr(value)
    if len(text) > _GOT_MAX_CHARS:
        text = text[: _GOT_MAX_CHARS - 4] + "…" + text[-3:]
    return f"(got {text})"


def _invalid(reason: str) -> PydanticCustomError:
    # The reason goes in through the context so braces in user input are never formatted.
    return PydanticCustomError("invalid_setting", "{reason}", {"reason": reason})


def _as_text(value: object) -> str | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return value.strip()
    return None


def _number(value: object, *, what: str, maximum: float) -> float:
    """A finite number in (0, maximum], from a string or a number."""
    reason = f"must be a positive number of {what} {_got(value)}"
    if isinstance(value, bool):
        raise _invalid(reason)
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = _as_text(value)
        if text is None:
            raise _invalid(reason)
        try:
            number = float(text)
        except ValueError:
            raise _invalid(reason) from None
    if not math.isfinite(number) or number <= 0:
        raise _invalid(reason)
    if number > maximum:
        raise _invalid(f"must be at most {maximum:g} {what} {_got(value)}")
    return number


def _optional_secret(value: object, *, prefix: str | None = None, help_text: str = "") -> Any:
    text = _as_text(value)
    if text is None:
        return value
    if not text:
        return None
    if prefix is not None and not text.startswith(prefix):
        seen = _SLACK_TOKEN_PREFIX_RE.match(text)
        got = f"a token starting with {seen.group(0)}" if seen else "something else"
        raise _invalid(f"must start with {prefix} (got {got}); use {help_text}")
    return text


class Settings(BaseSettings):
    """Every setting of the bot; field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=DEFAULT_ENV_FILE,
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        frozen=True,
    )

    SLACK_BOT_TOKEN: SecretStr | None = None
    SLACK_SIGNING_SECRET: SecretStr | None = None
    SLACK_APP_TOKEN: SecretStr | None = None
    SLACK_API_URL: str | None = None
    DATABASE_URL: str = DEFAULT_DATABASE_URL
    AUTO_RELEASE_DAYS: float = 14.0
    REQUEST_REMINDER_FIRST_HOURS: float = 24.0
    REQUEST_REMINDER_EVERY_HOURS: float = 48.0
    REVIEW_REMINDER_DAYS_BEFORE: Annotated[tuple[float, ...], NoDecode] = (7.0, 1.0)
    FUND_REMINDER_HOURS: float = 48.0
    WORKING_HOURS: Annotated[WorkingHours, NoDecode] = WorkingHours(time(9, 0), time(18, 0))
    SWEEP_SECONDS: float = 30.0
    SHUTDOWN_SECONDS: float = 10.0
    MAX_AMOUNT: int = 10_000_000
    LOG_LEVEL: str = "INFO"

    # ----- validation (each raises one readable reason; the variable is added by the loader)

    @field_validator("SLACK_BOT_TOKEN", mode="before")
    @classmethod
    def _check_bot_token(cls, value: object) -> Any:
        return _optional_secret(value, prefix="xoxb-", help_text=BOT_TOKEN_HELP)

    @field_validator("SLACK_APP_TOKEN", mode="before")
    @classmethod
    def _check_app_token(cls, value: object) -> Any:
        return _optional_secret(value, prefix="xapp-", help_text=APP_TOKEN_HELP)

    @field_validator("SLACK_SIGNING_SECRET", mode="before")
    @classmethod
    def _check_signing_secret(cls, value: object) -> Any:
        return _optional_secret(value)

    @field_validator("SLACK_API_URL", mode="before")
    @classmethod
    def _check_api_url(cls, value: object) -> str | None:
        if value is None:
            return None
        text = _as_text(value)
        if text == "":
            return None
        reason = (
            "must be an http(s) URL of the Slack Web API, such as "
            f"http://127.0.0.1:9000/api/ {_got(value)}"
        )
        if text is None or re.search(r"\s", text):
            raise _invalid(reason)
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid(reason)
        return text

    @field_validator("DATABASE_URL", mode="before")
    @classmethod
    def _check_database_url(cls, value: object) -> str:
        text = _as_text(value)
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
            raise _invalid(
                f"must be a SQLite or PostgreSQL URL, {example} (got a {backend}:// URL)"
            )
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)

    @field_validator("AUTO_RELEASE_DAYS", mode="before")
    @classmethod
    def _check_days(cls, value: object) -> float:
        return _number(value, what="days", maximum=MAX_DAYS)

    @field_validator(
        "REQUEST_REMINDER_FIRST_HOURS",
        "REQUEST_REMINDER_EVERY_HOURS",
        "FUND_REMINDER_HOURS",
        mode="before",
    )
    @classmethod
    def _check_hours(cls, value: object) -> float:
        return _number(value, what="hours", maximum=MAX_HOURS)

    @field_validator("SWEEP_SECONDS", "SHUTDOWN_SECONDS", mode="before")
    @classmethod
    def _check_seconds(cls, value: object) -> float:
        return _number(value, what="seconds", maximum=MAX_SWEEP_SECONDS)

    @field_validator("REVIEW_REMINDER_DAYS_BEFORE", mode="before")
    @classmethod
    def _check_review_reminders(cls, value: object) -> tuple[float, ...]:
        reason = (
            "must be comma-separated positive numbers of days, such as 7,1 "
            f"(or empty for no reminders) {_got(value)}"
        )
        if isinstance(value, tuple | list):
            items: list[object] = list(value)
        else:
            text = _as_text(value)
            if text is None:
                raise _invalid(reason)
            if not text:
                return ()
            items = [item.strip() for item in text.split(",")]
        days: set[float] = set()
        for item in items:
            try:
                days.add(_number(item, what="days", maximum=MAX_DAYS))
            except PydanticCustomError:
                raise _invalid(reason) from None
        return tuple(sorted(days, reverse=True))

    @field_validator("WORKING_HOURS", mode="before")
    @classmethod
    def _check_working_hours(cls, value: object) -> WorkingHours:
        if isinstance(value, WorkingHours):
            start, end = value
        else:
            text = _as_text(value)
            match = _WORKING_HOURS_RE.match(text) if text is not None else None
            if match is None:
                raise _invalid(f"expected HH:MM-HH:MM such as 09:00-18:00 {_got(value)}")
            h1, m1, h2, m2 = (int(group) for group in match.groups())
            if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
                raise _invalid(
                    f"hours must be 00-23 and minutes 00-59, as in 09:00-18:00 {_got(value)}"
                )
            start, end = time(h1, m1), time(h2, m2)
        if start >= end:
            raise _invalid(f"the start must be before the end, as in 09:00-18:00 {_got(value)}")
        return WorkingHours(start, end)

    @field_validator("MAX_AMOUNT", mode="before")
    @classmethod
    def _check_max_amount(cls, value: object) -> int:
        reason = f"must be a positive whole number of major units {_got(value)}"
        if isinstance(value, bool):
            raise _invalid(reason)
        if isinstance(value, int):
            amount = value
        else:
            text = _as_text(value)
            if text is None or not re.fullmatch(r"\d+", text.replace("_", "")):
                raise _invalid(reason)
            amount = int(text.replace("_", ""))
        if amount <= 0:
            raise _invalid(reason)
        if amount > MAX_AMOUNT_LIMIT:
            raise _invalid(f"must be at most {MAX_AMOUNT_LIMIT} {_got(value)}")
        return amount

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _check_log_level(cls, value: object) -> str:
        text = _as_text(value)
        level = text.upper() if text else ""
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise _invalid(f"must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL {_got(value)}")
        return level

    # ----- derived values

    @property
    def auto_release_period(self) -> timedelta:
        """How long submitted work waits for review before it is released automatically."""
        return timedelta(days=self.AUTO_RELEASE_DAYS)

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
