"""App Home: each person's contracts, what waits for them, recent activity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App

from handlers.errors import guarded


def register(app: App, publish: Callable[[str], None]) -> None:
    """`publish(user_id)` renders and publishes one person's Home (bot.delivery)."""

    def on_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") == "home":
            publish(event["user"])

    app.event("app_home_opened")(guarded(on_home_opened))
