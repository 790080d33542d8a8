"""`serve` runs for one workspace or for any that installs it, by the settings found;
a half-configured mix is refused with one line naming what is missing."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.settings import DistributionCredentials, Settings, SettingsError, load_settings
from tests.test_settings import SETTING_NAMES

KEY = Fernet.generate_key().decode()
OLD_KEY = Fernet.generate_key().decode()
DISTRIBUTION = {
    "SLACK_CLIENT_ID": "1111.2222",
    "SLACK_CLIENT_SECRET": "client-s3cret",
    "SLACK_SIGNING_SECRET": "signing-s3cret",
    "TOKEN_ENCRYPTION_KEY": f"{KEY}, {OLD_KEY}",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load_with(monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_the_bot_token_and_signing_secret_alone_mean_single_workspace_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_with(monkeypatch, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s")

    assert settings.distribution is False
    assert settings.require_http().bot_token == "xoxb-1"


def test_client_id_secret_signing_secret_and_key_mean_distribution_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_with(monkeypatch, **DISTRIBUTION)

    assert settings.distribution is True
    credentials = settings.require_distribution()
    assert credentials == DistributionCredentials(
        client_id="1111.2222",
        client_secret="client-s3cret",
        signing_secret="signing-s3cret",
        encryption_keys=(KEY, OLD_KEY),
    )
    shown = repr(settings) + repr(credentials)
    assert "client-s3cret" not in shown and KEY not in shown and "signing-s3cret" not in shown


@pytest.mark.parametrize("left_out", sorted(DISTRIBUTION))
def test_distribution_without_one_of_its_settings_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, left_out: str
) -> None:
    given = {name: value for name, value in DISTRIBUTION.items() if name != left_out}
    settings = load_with(monkeypatch, **given)

    with pytest.raises(SettingsError) as caught:
        settings.require_distribution()

    message = caught.value.message
    assert message.startswith(f"Set {left_out} (")
    assert message.endswith("to run in distribution mode")
    assert "\n" not in message
    for other in set(DISTRIBUTION) - {left_out}:
        assert f"{other} (" not in message


def test_a_bot_token_next_to_the_distribution_settings_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_with(monkeypatch, SLACK_BOT_TOKEN="xoxb-1", **DISTRIBUTION)

    with pytest.raises(SettingsError) as caught:
        settings.require_distribution()

    assert caught.value.message.startswith("SLACK_BOT_TOKEN is set with SLACK_CLIENT_ID")
    assert "xoxb-1" not in caught.value.message
    assert "\n" not in caught.value.message


def test_a_malformed_encryption_key_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", f"{KEY},not-a-real-key-at-all")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = caught.value.message
    assert message.startswith("TOKEN_ENCRYPTION_KEY: key 2 is not a Fernet key")
    assert "not-a-real-key-at-all" not in message and KEY not in message


def serve(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--port", "0"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_a_half_configured_distribution_with_one_line(tmp_path: Path) -> None:
    done = serve(tmp_path, {"SLACK_CLIENT_ID": "1111.2222", "SLACK_SIGNING_SECRET": "s"})

    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "SLACK_CLIENT_SECRET" in lines[0] and "TOKEN_ENCRYPTION_KEY" in lines[0]
    assert "distribution mode" in lines[0]


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, "single-workspace mode"),
        (DISTRIBUTION, "distribution mode"),
    ],
)
def test_serve_says_which_mode_in_its_first_line(
    tmp_path: Path, env: dict[str, str], said: str
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", "0"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", **env},
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert first.startswith(f"milestone-bot: {said}"), first


def test_serve_in_distribution_mode_offers_the_add_to_slack_page(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--workers", "1"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", **DISTRIBUTION},
        cwd=tmp_path,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{port}/slack/install", timeout=5) as page:
                    body, cookie = page.read().decode(), page.headers.get("Set-Cookie", "")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "https://slack.com/oauth/v2/authorize?state=" in body
    assert "client_id=1111.2222" in body.replace("&amp;", "&")
    assert "scope=commands,chat:write," in body
    assert cookie.startswith("slack-app-oauth-state=")
