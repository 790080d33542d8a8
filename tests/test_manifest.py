"""The app manifest: one source, both modes valid against Slack's own schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.validators import validator_for

from bot.manifest import (
    BOT_EVENTS,
    BOT_SCOPES,
    METHOD_SCOPES,
    SLASH_COMMANDS,
    ManifestError,
    build_manifest,
    render_manifest_yaml,
)
from tests.conftest import missing_dependency

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SCHEMA_PATH = SHARED / "slack-manifest-schema" / "manifest.schema.1.0.0.json"
SCHEMA_REPOSITORY = "https://github.com/slackapi/manifest-schema"  # its schemas/ folder
REQUEST_URL = "https://milestones.example.com/slack/events"


@pytest.fixture(scope="module")
def manifest_schema() -> dict[str, Any]:
    if not SCHEMA_PATH.is_file():
        missing_dependency(
            "Slack's manifest schema is not at "
            "../shared/slack-manifest-schema/manifest.schema.1.0.0.json (beside the repository)",
            fix=(
                'd="$(mktemp -d)" && git clone -q --depth 1 '
                f'{SCHEMA_REPOSITORY} "$d" && mkdir -p {SCHEMA_PATH.parent} && '
                f'cp "$d/schemas/{SCHEMA_PATH.name}" {SCHEMA_PATH}'
            ),
        )
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def schema_errors(schema: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]


def all_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_keys(item)


def test_the_committed_manifest_is_exactly_what_the_code_generates() -> None:
    committed = (REPO_ROOT / "manifest.yaml").read_text(encoding="utf-8")

    assert committed == render_manifest_yaml(build_manifest()), (
        "manifest.yaml has drifted from bot/manifest.py; regenerate it with "
        "`milestone-bot manifest > manifest.yaml`"
    )


@pytest.mark.parametrize("request_url", [None, REQUEST_URL], ids=["socket-mode", "http-mode"])
def test_the_rendered_yaml_reads_back_as_the_same_manifest(request_url: str | None) -> None:
    manifest = build_manifest(request_url=request_url)
    rendered = render_manifest_yaml(manifest)

    assert rendered.startswith("# ")
    assert "milestone-bot manifest" in rendered.splitlines()[0]
    assert yaml.safe_load(rendered) == manifest


@pytest.mark.parametrize("request_url", [None, REQUEST_URL], ids=["socket-mode", "http-mode"])
def test_the_manifest_validates_against_slacks_schema(
    manifest_schema: dict[str, Any], request_url: str | None
) -> None:
    manifest = yaml.safe_load(render_manifest_yaml(build_manifest(request_url=request_url)))

    assert schema_errors(manifest_schema, manifest) == []


def test_the_schema_check_does_catch_a_broken_manifest(manifest_schema: dict[str, Any]) -> None:
    manifest = build_manifest()
    manifest["features"]["slash_commands"][0]["command"] = "milestone"
    manifest["token_rotation_enabled"] = False

    errors = schema_errors(manifest_schema, manifest)

    assert any(error.startswith("features/slash_commands/0/command") for error in errors)
    assert any("token_rotation_enabled" in error for error in errors)


def test_the_socket_mode_manifest_needs_no_public_url() -> None:
    manifest = build_manifest()

    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "url" not in set(all_keys(manifest))
    assert "request_url" not in set(all_keys(manifest))
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}


def test_the_http_mode_manifest_sets_all_three_request_urls_and_turns_socket_mode_off() -> None:
    manifest = build_manifest(request_url=REQUEST_URL)
    settings = manifest["settings"]

    assert settings["socket_mode_enabled"] is False
    assert [command["url"] for command in manifest["features"]["slash_commands"]] == [REQUEST_URL]
    assert settings["interactivity"] == {"is_enabled": True, "request_url": REQUEST_URL}
    assert settings["event_subscriptions"]["request_url"] == REQUEST_URL
    assert settings["event_subscriptions"]["bot_events"] == list(BOT_EVENTS)


def test_the_two_modes_differ_only_in_urls_and_socket_mode() -> None:
    socket_mode = build_manifest()
    http_mode = build_manifest(request_url=REQUEST_URL)
    del http_mode["features"]["slash_commands"][0]["url"]
    del http_mode["settings"]["interactivity"]["request_url"]
    del http_mode["settings"]["event_subscriptions"]["request_url"]
    http_mode["settings"]["socket_mode_enabled"] = True

    assert http_mode == socket_mode


@pytest.mark.parametrize(
    "bad_url",
    [
        "",
        "milestones.example.com/slack/events",
        "ftp://milestones.example.com/slack/events",
        "https://",
        "https://milestones example.com/slack/events",
        "https://milestones.example.com/" + "x" * 3000,
    ],
)
def test_a_request_url_slack_cannot_use_is_refused(bad_url: str) -> None:
    with pytest.raises(ManifestError, match="request-url"):
        build_manifest(request_url=bad_url)


def test_plain_http_is_accepted_for_local_tunnels() -> None:
    manifest = build_manifest(request_url="http://localhost:3000/slack/events")

    assert manifest["settings"]["interactivity"]["request_url"].startswith("http://")


def test_the_only_slash_command_is_milestone_with_escaping_on() -> None:
    commands = build_manifest()["features"]["slash_commands"]

    assert SLASH_COMMANDS == ("/milestone",)
    assert [command["command"] for command in commands] == list(SLASH_COMMANDS)
    assert all(command["should_escape"] is True for command in commands)
    assert all(command["description"] and command["usage_hint"] for command in commands)


def test_the_bot_asks_for_exactly_the_scopes_it_uses() -> None:
    manifest = build_manifest()

    assert manifest["oauth_config"]["scopes"] == {"bot": list(BOT_SCOPES)}
    assert sorted(BOT_SCOPES) == sorted(
        [
            "commands",
            "chat:write",
            "users:read",
            "channels:read",
            "groups:read",
            "channels:history",
            "groups:history",
            "im:write",  # direct messages (conversations.open)
        ]
    )


def test_every_scope_is_needed_by_a_method_the_bot_calls() -> None:
    needed = {scope for scope in METHOD_SCOPES.values() if scope is not None}
    # the slash command; conversations.info and .history on a private channel
    needed |= {"commands", "groups:read", "groups:history"}

    assert needed == set(BOT_SCOPES)
    assert METHOD_SCOPES["conversations.info"] == "channels:read"
    assert METHOD_SCOPES["users.info"] == "users:read"
    assert METHOD_SCOPES["auth.test"] is None


def test_the_app_home_tab_is_on_and_its_event_subscribed() -> None:
    manifest = build_manifest()

    assert manifest["features"]["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,  # direct messages from the app (notify)
        "messages_tab_read_only_enabled": True,
    }
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert BOT_EVENTS == ("app_home_opened",)


def test_display_information_fits_slacks_limits() -> None:
    manifest = build_manifest()
    display = manifest["display_information"]

    assert display["name"] == "milestone-bot"
    assert 1 <= len(display["description"]) <= 140
    assert 175 <= len(display["long_description"]) <= 4000
    assert 4 <= len(display["background_color"]) <= 7
    assert manifest["features"]["bot_user"] == {
        "display_name": "milestone-bot",
        "always_online": True,
    }
    assert manifest["_metadata"] == {"major_version": 1, "minor_version": 1}
    assert manifest["settings"]["org_deploy_enabled"] is False
    assert manifest["settings"]["token_rotation_enabled"] is False
