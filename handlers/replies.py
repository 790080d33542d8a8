"""Where a person's answer goes: the reply address stored with an outbox intent.

The domain keeps it as an opaque string (domain.intake.Origin.reply_to); the listener
that received the request writes it, and the delivery reads it when the answer is sent,
perhaps after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_URL = "url:"
_EPHEMERAL = "ephemeral:"


@dataclass(frozen=True)
class Address:
    response_url: str | None = None  # Slack's response_url (30 minutes, 5 uses)
    channel_id: str | None = None  # else: an ephemeral message in this channel …
    user_id: str | None = None  # … to this person

    def encode(self) -> str:
        if self.response_url:
            return _URL + self.response_url
        return f"{_EPHEMERAL}{self.channel_id}:{self.user_id}"


def decode(address: str) -> Address:
    if address.startswith(_URL):
        return Address(response_url=address[len(_URL) :])
    if address.startswith(_EPHEMERAL):
        channel, _, user = address[len(_EPHEMERAL) :].partition(":")
        return Address(channel_id=channel, user_id=user)
    raise ValueError(f"not a reply address: {address[:40]!r}")


def reply_address(body: dict[str, Any]) -> str | None:
    """Where to answer the person behind a command or a click: the request's
    response_url; a click in App Home or a modal has none (None)."""
    url = body.get("response_url")
    if not url and body.get("response_urls"):
        url = body["response_urls"][0].get("response_url")
    return Address(response_url=str(url)).encode() if url else None


def ephemeral_address(channel_id: str, user_id: str) -> str | None:
    """An ephemeral message in a channel (a form's answer, in the channel it came from)."""
    if not channel_id or not user_id:
        return None
    return Address(channel_id=channel_id, user_id=user_id).encode()
