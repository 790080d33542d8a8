"""App Home: each person's contracts, what waits for them, recent activity; its
Previous / Next buttons turn the pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from handlers.errors import guarded
from handlers.ids import Action
from handlers.payloads import HomePage


def register(app: App, publish: Callable[..., None]) -> None:
    """`publish(user_id, page=0, via=client)` renders and publishes one person's Home at a
    page with the request's client (bot.delivery.publish_home)."""

    def on_home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            publish(event["user"], via=client)

    def turn_page(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        page = HomePage.load(str(body["actions"][0].get("value", ""))).page
        ack()
        publish(str(body["user"]["id"]), page, via=client)

    app.event("app_home_opened")(guarded(on_home_opened))
    for action in (Action.HOME_PREVIOUS, Action.HOME_NEXT):
        app.action(action.value)(guarded(turn_page))
