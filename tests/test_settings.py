"""Configuration: defaults, parsing, one-line refusals, `.env` files and mode checks."""

from __future__ import annotations

import logging
from datetime import time, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.app import policy_from
from bot.settings import (
    DEFAULT_DATABASE_URL,
    HttpCredentials,
    Settings,
    SettingsError,
    WorkingHours,
    load_settings,
)

SETTING_NAMES = tuple(Settings.model_fields)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting from the real environment, and a working directory without `.env`."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load_with(monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def refusal(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return caught.value.message


def test_settings_cover_exactly_the_documented_variables_and_log_level() -> None:
    assert set(SETTING_NAMES) == {
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "SLACK_API_URL",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
        "TOKEN_ENCRYPTION_KEY",
        "DATABASE_URL",
        "AUTO_RELEASE_DAYS",
        "END_WINDOW_DAYS",
        "REQUEST_REMINDER_FIRST_HOURS",
        "REQUEST_REMINDER_EVERY_HOURS",
        "REVIEW_REMINDER_DAYS_BEFORE",
        "FUND_REMINDER_HOURS",
        "WORKING_HOURS",
        "SWEEP_SECONDS",
        "SHUTDOWN_SECONDS",
        "MAX_AMOUNT",
        "LOG_LEVEL",
        "PAYMENTS",
        "STRIPE_API_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_API_BASE",
        "PUBLIC_URL",
    }


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = load_settings()

    assert settings.SLACK_BOT_TOKEN is None
    assert settings.SLACK_SIGNING_SECRET is None
    assert settings.SLACK_APP_TOKEN is None
    assert settings.SLACK_API_URL is None
    assert settings.DATABASE_URL == DEFAULT_DATABASE_URL == "sqlite:///milestone-bot.sqlite3"
    assert settings.AUTO_RELEASE_DAYS == 14
    assert settings.auto_release_period == timedelta(days=14)
    assert settings.END_WINDOW_DAYS == 7
    assert settings.end_window == timedelta(days=7)
    assert settings.REQUEST_REMINDER_FIRST_HOURS == 24
    assert settings.request_reminder_first_delay == timedelta(hours=24)
    assert settings.REQUEST_REMINDER_EVERY_HOURS == 48
    assert settings.request_reminder_interval == timedelta(hours=48)
    assert settings.REVIEW_REMINDER_DAYS_BEFORE == (7.0, 1.0)
    assert settings.review_reminder_offsets == (timedelta(days=7), timedelta(days=1))
    assert settings.FUND_REMINDER_HOURS == 48
    assert settings.fund_reminder_delay == timedelta(hours=48)
    assert settings.WORKING_HOURS == WorkingHours(start=time(9, 0), end=time(18, 0))
    assert str(settings.WORKING_HOURS) == "09:00-18:00"
    assert settings.SWEEP_SECONDS == 30
    assert settings.SHUTDOWN_SECONDS == 10
    assert settings.MAX_AMOUNT == 10_000_000
    assert settings.LOG_LEVEL == "INFO"
    assert settings.log_level == logging.INFO


def test_the_end_window_accepts_fractions_too_and_reaches_the_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_with(monkeypatch, END_WINDOW_DAYS="0.0005")

    assert settings.end_window == timedelta(seconds=43.2)
    assert policy_from(settings).end_window == timedelta(seconds=43.2)


def test_auto_release_days_accepts_fractions_for_demos(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_with(monkeypatch, AUTO_RELEASE_DAYS="0.0005")

    assert settings.auto_release_period == timedelta(seconds=43.2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7,1", (7.0, 1.0)),
        ("1, 7 ,7", (7.0, 1.0)),
        ("0.5,3,2", (3.0, 2.0, 0.5)),
        ("2", (2.0,)),
        ("", ()),
        ("  ", ()),
    ],
)
def test_review_reminders_are_parsed_deduplicated_and_sorted_longest_first(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[float, ...]
) -> None:
    settings = load_with(monkeypatch, REVIEW_REMINDER_DAYS_BEFORE=value)

    assert settings.REVIEW_REMINDER_DAYS_BEFORE == expected
    assert settings.review_reminder_offsets == tuple(timedelta(days=d) for d in expected)


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        ("08:30-17:00", time(8, 30), time(17, 0)),
        ("8:30-17:00", time(8, 30), time(17, 0)),
        (" 00:00 - 23:59 ", time(0, 0), time(23, 59)),
    ],
)
def test_working_hours_are_parsed_into_start_and_end_times(
    monkeypatch: pytest.MonkeyPatch, value: str, start: time, end: time
) -> None:
    settings = load_with(monkeypatch, WORKING_HOURS=value)

    assert settings.WORKING_HOURS.start == start
    assert settings.WORKING_HOURS.end == end


def test_numbers_and_names_are_read_from_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_with(
        monkeypatch,
        REQUEST_REMINDER_FIRST_HOURS="1.5",
        REQUEST_REMINDER_EVERY_HOURS="12",
        FUND_REMINDER_HOURS="0.25",
        SWEEP_SECONDS="0.5",
        SHUTDOWN_SECONDS="2.5",
        MAX_AMOUNT="250000",
        LOG_LEVEL="debug",
        SLACK_API_URL="http://127.0.0.1:9000/api/",
    )

    assert settings.request_reminder_first_delay == timedelta(minutes=90)
    assert settings.request_reminder_interval == timedelta(hours=12)
    assert settings.fund_reminder_delay == timedelta(minutes=15)
    assert settings.SWEEP_SECONDS == 0.5
    assert settings.SHUTDOWN_SECONDS == 2.5
    assert settings.MAX_AMOUNT == 250_000
    assert settings.LOG_LEVEL == "DEBUG"
    assert settings.log_level == logging.DEBUG
    assert settings.SLACK_API_URL == "http://127.0.0.1:9000/api/"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "postgresql://bot:pw@db:5432/milestones",
            "postgresql+psycopg://bot:pw@db:5432/milestones",
        ),
        ("postgres://bot:pw@db/milestones", "postgresql+psycopg://bot:pw@db/milestones"),
        ("postgresql://bot:p%40ss@db/milestones", "postgresql+psycopg://bot:p%40ss@db/milestones"),
        ("postgresql+psycopg://bot@db/milestones", "postgresql+psycopg://bot@db/milestones"),
        ("sqlite:///data/bot.sqlite3", "sqlite:///data/bot.sqlite3"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_database_url_normalises_postgresql_to_the_psycopg_driver(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    assert load_with(monkeypatch, DATABASE_URL=value).DATABASE_URL == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLACK_BOT_TOKEN", "xoxp-user-token"),
        ("SLACK_BOT_TOKEN", "xapp-1-app-token"),
        ("SLACK_BOT_TOKEN", "not-a-token"),
        ("SLACK_APP_TOKEN", "xoxb-bot-token"),
        ("SLACK_APP_TOKEN", "app-token"),
        ("SLACK_API_URL", "ftp://slack.example/api/"),
        ("SLACK_API_URL", "slack.com/api"),
        ("SLACK_API_URL", "http://"),
        ("SLACK_API_URL", "http://emulator host/api/"),
        ("SLACK_API_URL", "http://[::1/"),
        ("SLACK_API_URL", "http:///api/"),
        ("DATABASE_URL", ""),
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://bot:pw@db/milestones"),
        ("AUTO_RELEASE_DAYS", "abc"),
        ("AUTO_RELEASE_DAYS", ""),
        ("AUTO_RELEASE_DAYS", "0"),
        ("AUTO_RELEASE_DAYS", "-1"),
        ("AUTO_RELEASE_DAYS", "nan"),
        ("AUTO_RELEASE_DAYS", "inf"),
        ("AUTO_RELEASE_DAYS", "1e12"),
        ("REQUEST_REMINDER_FIRST_HOURS", "soon"),
        ("REQUEST_REMINDER_FIRST_HOURS", "0"),
        ("REQUEST_REMINDER_FIRST_HOURS", "1e12"),
        ("REQUEST_REMINDER_EVERY_HOURS", "-48"),
        ("REQUEST_REMINDER_EVERY_HOURS", "two days"),
        ("REVIEW_REMINDER_DAYS_BEFORE", "7,x"),
        ("REVIEW_REMINDER_DAYS_BEFORE", "7,,1"),
        ("REVIEW_REMINDER_DAYS_BEFORE", "7;1"),
        ("REVIEW_REMINDER_DAYS_BEFORE", "0"),
        ("REVIEW_REMINDER_DAYS_BEFORE", "7,-1"),
        ("REVIEW_REMINDER_DAYS_BEFORE", "[7, 1]"),
        ("FUND_REMINDER_HOURS", "nope"),
        ("FUND_REMINDER_HOURS", "0"),
        ("WORKING_HOURS", "9-5"),
        ("WORKING_HOURS", ""),
        ("WORKING_HOURS", "09:00"),
        ("WORKING_HOURS", "18:00-09:00"),
        ("WORKING_HOURS", "09:00-09:00"),
        ("WORKING_HOURS", "24:00-25:00"),
        ("WORKING_HOURS", "09:60-18:00"),
        ("WORKING_HOURS", "nine to five"),
        ("SWEEP_SECONDS", "fast"),
        ("SWEEP_SECONDS", "0"),
        ("SWEEP_SECONDS", "-30"),
        ("SWEEP_SECONDS", "1e9"),
        ("SHUTDOWN_SECONDS", "soon"),
        ("SHUTDOWN_SECONDS", "0"),
        ("SHUTDOWN_SECONDS", "-10"),
        ("SHUTDOWN_SECONDS", "inf"),
        ("SHUTDOWN_SECONDS", "1e9"),
        ("MAX_AMOUNT", "ten"),
        ("MAX_AMOUNT", "0"),
        ("MAX_AMOUNT", "-5"),
        ("MAX_AMOUNT", "1.5"),
        ("MAX_AMOUNT", "1e6"),
        ("MAX_AMOUNT", "10000000000000000000"),
        ("LOG_LEVEL", "loud"),
        ("LOG_LEVEL", ""),
    ],
)
def test_a_malformed_value_stops_start_up_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    message = refusal(monkeypatch, name, value)

    assert message.startswith(f"{name}: ")
    assert "\n" not in message
    assert len(message.split(": ", 1)[1]) > 10  # says what is wrong, not just the name


def test_the_refusals_read_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    assert refusal(monkeypatch, "AUTO_RELEASE_DAYS", "abc") == (
        "AUTO_RELEASE_DAYS: must be a positive number of days (got 'abc')"
    )
    monkeypatch.delenv("AUTO_RELEASE_DAYS")
    assert refusal(monkeypatch, "WORKING_HOURS", "9-5") == (
        "WORKING_HOURS: expected HH:MM-HH:MM such as 09:00-18:00 (got '9-5')"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AUTO_RELEASE_DAYS", "nan", "must be a positive number of days (got 'nan')"),
        ("AUTO_RELEASE_DAYS", "1e12", "must be at most 3650 days (got '1e12')"),
        ("REQUEST_REMINDER_FIRST_HOURS", "0", "must be a positive number of hours (got '0')"),
        ("FUND_REMINDER_HOURS", "87601", "must be at most 87600 hours (got '87601')"),
        ("SWEEP_SECONDS", "-30", "must be a positive number of seconds (got '-30')"),
        ("SHUTDOWN_SECONDS", "1e9", "must be at most 86400 seconds (got '1e9')"),
        ("MAX_AMOUNT", "1.5", "must be a positive whole number of major units (got '1.5')"),
        (
            "MAX_AMOUNT",
            "1000000000001",
            "must be at most 1000000000000 major units (got '1000000000001')",
        ),
        (
            "REVIEW_REMINDER_DAYS_BEFORE",
            "7,,1",
            "must be comma-separated positive numbers of days, such as 7,1 "
            "(or empty for no reminders) (got '7,,1')",
        ),
        (
            "WORKING_HOURS",
            "24:00-25:00",
            "hours must be 00-23 and minutes 00-59, as in 09:00-18:00 (got '24:00-25:00')",
        ),
        (
            "WORKING_HOURS",
            "18:00-09:00",
            "the start must be before the end, as in 09:00-18:00 (got '18:00-09:00')",
        ),
        (
            "SLACK_API_URL",
            "http://[::1/",
            "must be an http(s) URL of the Slack Web API, such as http://127.0.0.1:9000/api/ "
            "(got 'http://[::1/')",
        ),
        (
            "LOG_LEVEL",
            "{reason}",
            "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got '{reason}')",
        ),
        (
            "DATABASE_URL",
            "  ",
            "must be a SQLite or PostgreSQL URL, such as sqlite:///milestone-bot.sqlite3 or "
            "postgresql://user:password@host/db (got an empty value)",
        ),
    ],
)
def test_each_refusal_names_the_rule_and_the_value_given(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    assert refusal(monkeypatch, name, value) == f"{name}: {message}"


def test_blanks_around_values_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_with(
        monkeypatch,
        SLACK_BOT_TOKEN=" xoxb-1 ",
        SLACK_SIGNING_SECRET="\ts3cret\n",
        SLACK_API_URL=" http://127.0.0.1:9000/api/ ",
        DATABASE_URL=" sqlite:// ",
        AUTO_RELEASE_DAYS=" 2 ",
        MAX_AMOUNT=" 42 ",
        LOG_LEVEL=" warning ",
    )

    assert settings.require_http() == HttpCredentials(bot_token="xoxb-1", signing_secret="s3cret")
    assert settings.SLACK_API_URL == "http://127.0.0.1:9000/api/"
    assert settings.DATABASE_URL == "sqlite://"
    assert settings.AUTO_RELEASE_DAYS == 2
    assert settings.MAX_AMOUNT == 42
    assert settings.LOG_LEVEL == "WARNING"


def test_values_given_in_code_follow_the_same_rules() -> None:
    settings = Settings(
        _env_file=None,
        REVIEW_REMINDER_DAYS_BEFORE=[1, 3, 3],
        WORKING_HOURS=WorkingHours(time(8, 0), time(16, 0)),
    )

    assert settings.REVIEW_REMINDER_DAYS_BEFORE == (3.0, 1.0)
    assert settings.WORKING_HOURS == WorkingHours(time(8, 0), time(16, 0))
    with pytest.raises(ValidationError, match="the start must be before the end"):
        Settings(_env_file=None, WORKING_HOURS=WorkingHours(time(18, 0), time(9, 0)))


def test_a_wrong_token_is_refused_without_echoing_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(monkeypatch, "SLACK_BOT_TOKEN", "xoxp-1234-supersecret")

    assert message.startswith(
        "SLACK_BOT_TOKEN: must start with xoxb- (got a token starting with xoxp-)"
    )
    assert "OAuth & Permissions" in message
    assert "supersecret" not in message


def test_a_wrong_app_token_is_refused_without_echoing_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(monkeypatch, "SLACK_APP_TOKEN", "xoxb-1234-supersecret")

    assert message.startswith(
        "SLACK_APP_TOKEN: must start with xapp- (got a token starting with xoxb-)"
    )
    assert "App-Level Tokens" in message
    assert "supersecret" not in message


def test_a_bad_database_url_is_refused_without_echoing_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(monkeypatch, "DATABASE_URL", "mysql://bot:hunter2@db/milestones")

    assert message.startswith("DATABASE_URL: ")
    assert "hunter2" not in message


def test_several_malformed_values_are_all_named_on_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWEEP_SECONDS", "0")
    message = refusal(monkeypatch, "MAX_AMOUNT", "lots")

    assert "\n" not in message
    assert "SWEEP_SECONDS: " in message
    assert "MAX_AMOUNT: " in message


@pytest.mark.parametrize("name", ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"])
def test_an_empty_or_blank_secret_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    assert getattr(load_with(monkeypatch, **{name: "  "}), name) is None


def test_an_empty_api_url_means_slacks_own(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_with(monkeypatch, SLACK_API_URL="").SLACK_API_URL is None


def test_secrets_never_appear_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_with(
        monkeypatch,
        SLACK_BOT_TOKEN="xoxb-bot-secret",
        SLACK_SIGNING_SECRET="signing-secret",
        SLACK_APP_TOKEN="xapp-app-secret",
    )

    shown = repr(settings) + repr(settings.require_http()) + repr(settings.require_socket_mode())
    assert "bot-secret" not in shown
    assert "signing-secret" not in shown
    assert "app-secret" not in shown


def test_a_dotenv_file_in_the_working_directory_is_read(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-from-file\n"
        "AUTO_RELEASE_DAYS=2.5\n"
        "WORKING_HOURS=08:00-16:00\n"
        "REVIEW_REMINDER_DAYS_BEFORE=1,3\n"
        "SOMETHING_ELSE=ignored\n",
        encoding="utf-8",
    )

    settings = load_settings()

    assert settings.SLACK_BOT_TOKEN is not None
    assert settings.SLACK_BOT_TOKEN.get_secret_value() == "xoxb-from-file"
    assert settings.AUTO_RELEASE_DAYS == 2.5
    assert settings.WORKING_HOURS == WorkingHours(time(8, 0), time(16, 0))
    assert settings.REVIEW_REMINDER_DAYS_BEFORE == (3.0, 1.0)


def test_the_environment_wins_over_the_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    (clean_environment / ".env").write_text("AUTO_RELEASE_DAYS=2\n", encoding="utf-8")
    monkeypatch.setenv("AUTO_RELEASE_DAYS", "3")

    assert load_settings().AUTO_RELEASE_DAYS == 3


def test_a_malformed_value_in_the_dotenv_file_is_named_too(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text("WORKING_HOURS=nine-five\n", encoding="utf-8")

    with pytest.raises(SettingsError, match=r"^WORKING_HOURS: expected HH:MM-HH:MM"):
        load_settings()


def test_the_dotenv_file_can_be_left_out(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text("AUTO_RELEASE_DAYS=2\n", encoding="utf-8")

    assert load_settings(env_file=None).AUTO_RELEASE_DAYS == 14


def test_variable_names_are_case_sensitive(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    monkeypatch.setenv("auto_release_days", "3")
    (clean_environment / ".env").write_text("sweep_seconds=5\n", encoding="utf-8")

    settings = load_settings()

    assert settings.AUTO_RELEASE_DAYS == 14
    assert settings.SWEEP_SECONDS == 30


def test_http_mode_asks_for_the_bot_token_and_where_to_find_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_with(monkeypatch, SLACK_SIGNING_SECRET="s3cret")

    with pytest.raises(SettingsError) as caught:
        settings.require_http()

    message = caught.value.message
    assert message.startswith(
        "Set SLACK_BOT_TOKEN (the Bot User OAuth Token, xoxb-…, from your app's "
        "OAuth & Permissions page at api.slack.com/apps)"
    )
    assert "SLACK_SIGNING_SECRET" not in message
    assert "\n" not in message


def test_http_mode_asks_for_the_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_with(monkeypatch, SLACK_BOT_TOKEN="xoxb-1")

    with pytest.raises(SettingsError, match=r"^Set SLACK_SIGNING_SECRET \(.*Basic Information"):
        settings.require_http()


def test_http_mode_names_both_missing_variables_on_one_line() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings().require_http()

    assert "SLACK_BOT_TOKEN" in caught.value.message
    assert "SLACK_SIGNING_SECRET" in caught.value.message
    assert "\n" not in caught.value.message


def test_http_mode_hands_back_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_with(monkeypatch, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s3cret")

    credentials = settings.require_http()

    assert (credentials.bot_token, credentials.signing_secret) == ("xoxb-1", "s3cret")


def test_socket_mode_asks_for_the_app_level_token_and_where_to_find_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_with(monkeypatch, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s3cret")

    with pytest.raises(SettingsError) as caught:
        settings.require_socket_mode()

    message = caught.value.message
    assert message.startswith("Set SLACK_APP_TOKEN (")
    assert "xapp-" in message
    assert "connections:write" in message
    assert "App-Level Tokens" in message
    assert "SLACK_BOT_TOKEN" not in message


def test_socket_mode_asks_for_the_bot_token(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_with(monkeypatch, SLACK_APP_TOKEN="xapp-1-A1-2-abc")

    with pytest.raises(SettingsError, match=r"^Set SLACK_BOT_TOKEN \("):
        settings.require_socket_mode()


def test_socket_mode_does_not_need_the_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_with(monkeypatch, SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1-A1-2-abc")

    credentials = settings.require_socket_mode()

    assert (credentials.bot_token, credentials.app_token) == ("xoxb-1", "xapp-1-A1-2-abc")
