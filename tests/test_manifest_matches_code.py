"""The manifest and the code agree: commands ↔ listeners, Web API methods ↔ scopes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.manifest import BOT_EVENTS, BOT_SCOPES, METHOD_SCOPES, SLASH_COMMANDS, build_manifest
from handlers import actions, commands, home, views

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("bot", "handlers", "scheduler")
WEB_API_CALL = re.compile(r"\bclient\.((?:chat|views|users|conversations|auth)_\w+)\(")


class RecordingApp:
    """Stands in for bolt's App to see what each handlers module registers."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.events: list[str] = []
        self.actions: list[str] = []
        self.views: list[str] = []

    def _recorder(self, bucket: list[str], name: Any) -> Any:
        bucket.append(name)
        return lambda *listener, **parts: listener or parts  # plain, or ack= + lazy=

    def command(self, name: str) -> Any:
        return self._recorder(self.commands, name)

    def event(self, name: str) -> Any:
        return self._recorder(self.events, name)

    def action(self, name: str) -> Any:
        return self._recorder(self.actions, name)

    def view(self, name: str) -> Any:
        return self._recorder(self.views, name)


def registered() -> RecordingApp:
    app = RecordingApp()
    commands.register(app)  # type: ignore[arg-type]
    actions.register(app)  # type: ignore[arg-type]
    views.register(app)  # type: ignore[arg-type]
    home.register(app, publish=lambda user_id: None)  # type: ignore[arg-type]
    return app


def test_every_manifest_slash_command_has_a_listener_and_the_reverse() -> None:
    manifest_commands = {c["command"] for c in build_manifest()["features"]["slash_commands"]}
    assert manifest_commands == set(SLASH_COMMANDS)
    assert set(registered().commands) == manifest_commands


def test_every_subscribed_event_has_a_listener_and_the_reverse() -> None:
    manifest_events = set(build_manifest()["settings"]["event_subscriptions"]["bot_events"])
    assert manifest_events == set(BOT_EVENTS)
    assert set(registered().events) == manifest_events


def _slack_method(snake: str) -> str:
    family, _, rest = snake.partition("_")
    head, *tail = rest.split("_")
    return f"{family}.{head}{''.join(part.title() for part in tail)}"


def called_methods() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            if "emulator" in path.parts:
                continue  # the emulator plays Slack; it doesn't call it
            for match in WEB_API_CALL.finditer(path.read_text(encoding="utf-8")):
                found.setdefault(_slack_method(match.group(1)), set()).add(
                    str(path.relative_to(ROOT))
                )
    return found


def test_the_code_calls_web_api_methods_through_the_client() -> None:
    assert {"chat.postMessage", "chat.update", "views.open", "views.publish"} <= set(
        called_methods()
    )


def test_every_web_api_method_the_code_calls_has_its_scope_in_the_manifest() -> None:
    scopes = set(build_manifest()["oauth_config"]["scopes"]["bot"])
    assert scopes == set(BOT_SCOPES)
    for method, files in called_methods().items():
        assert method in METHOD_SCOPES, f"{method} (called in {sorted(files)}) has no scope entry"
        needed = METHOD_SCOPES[method]
        assert needed is None or needed in scopes, f"{method} needs {needed}"


def test_every_declared_scope_is_used_by_some_call_or_the_command() -> None:
    used = {METHOD_SCOPES[m] for m in called_methods()} | {"commands"}
    if "channels:read" in used:
        used.add("groups:read")  # conversations.info on a private channel
    if "channels:history" in used:
        used.add("groups:history")  # conversations.history on a private channel
    assert set(BOT_SCOPES) <= used
