"""`Message`: what a builder returns for chat surfaces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import Block


@dataclass(frozen=True)
class Message:
    """A message to post, update or send ephemerally.

    `text` is the notification / fallback text (mrkdwn); `blocks` what Slack shows.
    """

    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `chat_postMessage` / `chat_update` / `respond`."""
        return {"text": self.text, "blocks": [block.to_dict() for block in self.blocks]}
