"""App Home: each person's contracts, what waits for them, recent activity."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from handlers.deps import deps_of


def register(app: App, publish: Any) -> None:
    """`publish(user_id)` renders and publishes one person's Home (bot.delivery)."""

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any], context: Any, client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        deps_of(context)  # fail loudly if the wiring is missing
        publish(event["user"])
