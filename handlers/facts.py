"""What the handlers ask Slack before changing anything: is the bot a member of the
channel a contract will live in, and which workspace each party belongs to."""

from __future__ import annotations

from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from domain.errors import InvalidInput, NotAllowed
from domain.text import Person, said


def require_bot_in_channel(
    client: WebClient, channel_id: str, *, elsewhere: Callable[[str], bool] | None = None
) -> None:
    """Contracts live in a channel the bot is a member of (it posts the cards there).
    `elsewhere(channel_id)`: whether another installed workspace's bot is (distribution,
    a Slack Connect channel): then that one posts the cards."""
    how = (
        "I'm not a member of this channel yet. Invite me with `/invite @milestone-bot` "
        "(or mention me and choose *Invite*), then run the command again."
    )
    if channel_id.startswith("D"):
        raise NotAllowed(
            "Contracts live in a channel shared by the client and the provider. "
            "Create a channel, invite both sides and me, and run the command there."
        )
    try:
        info = client.conversations_info(channel=channel_id)
    except SlackApiError as error:
        if error.response.get("error") not in ("channel_not_found", "not_in_channel"):
            raise
        member = False
    else:
        member = bool(info["channel"].get("is_member", False))
    if not member and not (elsewhere is not None and elsewhere(channel_id)):
        raise NotAllowed(how)


def team_ids_of(client: WebClient, user_ids: list[str]) -> dict[str, str]:
    """Each party's workspace (Slack Connect); refuses bots and unknown or deleted users."""
    teams: dict[str, str] = {}
    for user_id in dict.fromkeys(user_ids):
        try:
            user = client.users_info(user=user_id)["user"]
        except SlackApiError as error:
            if error.response.get("error") == "user_not_found":
                raise InvalidInput(said("I can't find the user ", Person(user_id), ".")) from None
            raise
        if user.get("is_bot") or user.get("deleted"):
            raise InvalidInput(
                said(Person(user_id), " can't be a party: it is a bot or a deactivated user.")
            )
        if user.get("team_id"):
            teams[user_id] = user["team_id"]
    return teams
