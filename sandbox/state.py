"""What one person sees, as JSON for the page: read from the local Slack, never the DB.

The channel's messages (thread replies under their parent), that person's ephemeral
messages and the commands they typed, their open modals (with the field errors the
app answered), their App Home, the app's direct messages to them, and the sandbox time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.emulator import EphemeralMessage, SlackEmulator, StoredMessage

from .people import CAST, CHANNEL_ID

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class TypedCommand:
    """A slash command as its author typed it (Slack never posts it; the page shows it
    to the author only, just before the answer)."""

    user_id: str
    ts: str
    text: str


def snapshot(
    slack: SlackEmulator,
    *,
    viewer: str,
    typed: list[TypedCommand],
    now: datetime,
    offset: timedelta,
    version: int,
) -> JsonDict:
    channel = slack.channel(CHANNEL_ID)
    users = slack.users
    return {
        "version": version,
        "viewer": viewer,
        "now": now.isoformat(),
        "now_ms": int(now.timestamp() * 1000),
        "offset_days": round(offset.total_seconds() / 86400, 4),
        "team": {"id": slack.team_id, "name": slack.team_name},
        "bot": {"id": slack.bot_user_id, "name": slack.bot_name},
        "people": [p.to_json() for p in CAST],
        "users": {
            uid: {"name": u.name, "real_name": u.real_name, "tz": u.tz, "is_bot": u.is_bot}
            for uid, u in users.items()
        },
        "channels": {cid: c.name for cid, c in slack.channels.items() if not c.is_im},
        "channel": {
            "id": CHANNEL_ID,
            "name": channel.name if channel else CHANNEL_ID.lower(),
            "topic": channel.topic if channel else "",
            "members": channel.members if channel else [],
        },
        "messages": _threads(slack.messages(CHANNEL_ID)),
        "ephemerals": [_ephemeral(e) for e in slack.ephemerals(CHANNEL_ID, viewer)],
        "typed": [{"ts": t.ts, "text": t.text} for t in typed if t.user_id == viewer],
        "modals": [
            _view(view, errors=slack.view_errors(view["id"])) for view in slack.open_views(viewer)
        ],
        "home": _home(slack.home_view(viewer)),
        # The app's direct messages to the viewer (shown under their Home).
        "direct_messages": [_message(m) for m in slack.direct_messages(viewer)],
    }


def _message(message: StoredMessage) -> JsonDict:
    return {
        "ts": message.ts,
        "user": message.user,
        "is_bot": message.bot_id is not None,
        "text": message.text,
        "blocks": message.blocks,
        "edited": message.edited,
    }


def _threads(messages: list[StoredMessage]) -> list[JsonDict]:
    """Top-level messages in order, each with its thread replies under `replies`."""
    tops: list[JsonDict] = []
    by_ts: dict[str, JsonDict] = {}
    for message in messages:
        if message.is_reply:
            continue
        entry = {**_message(message), "replies": []}
        tops.append(entry)
        by_ts[message.ts] = entry
    for message in messages:
        if message.is_reply and message.thread_ts in by_ts:
            by_ts[message.thread_ts]["replies"].append(_message(message))
    return tops


def _ephemeral(message: EphemeralMessage) -> JsonDict:
    return {
        "ts": message.ts,
        "text": message.text,
        "blocks": message.blocks,
        "edited": message.edited,
    }


def _view(view: JsonDict, *, errors: dict[str, str]) -> JsonDict:
    return {
        "id": view["id"],
        "hash": view.get("hash"),
        "callback_id": view.get("callback_id"),
        "title": view.get("title"),
        "submit": view.get("submit"),
        "close": view.get("close"),
        "blocks": view.get("blocks") or [],
        "errors": errors,
    }


def _home(view: JsonDict | None) -> JsonDict | None:
    if view is None:
        return None
    return {"id": view["id"], "hash": view.get("hash"), "blocks": view.get("blocks") or []}
