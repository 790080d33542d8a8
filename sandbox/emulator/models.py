"""Plain data objects the emulator stores and hands out (always as copies)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

JsonDict = dict[str, Any]

#: How the answer to a Web API call reached the client: ``"sent"`` normally, ``"late"`` after
#: an ``answer_late`` pause, ``"dropped"`` never (``drop_after_apply`` closed the connection).
#: Late and dropped calls were applied all the same, so the client cannot know their outcome.
Delivery = Literal["sent", "late", "dropped"]


@dataclass(frozen=True)
class ApiCall:
    """One Web API request received by the emulator, with the answer it got."""

    method: str
    params: JsonDict
    headers: dict[str, str]
    at: float
    http_method: str = "POST"
    status: int = 200
    response: JsonDict = field(default_factory=dict)
    delivery: Delivery = "sent"

    @property
    def ok(self) -> bool:
        """Whether Slack applied the call (even if its answer came late or never arrived)."""
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        error = self.response.get("error")
        return error if isinstance(error, str) else None


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a ``response_url`` handed out by the emulator."""

    url: str
    body: JsonDict
    at: float
    status: int = 200
    error: str | None = None


@dataclass
class StoredMessage:
    """A message in a channel (posted by the bot, a response_url or an emulated user)."""

    channel: str
    ts: str
    text: str = ""
    blocks: list[JsonDict] = field(default_factory=list)
    user: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    team: str | None = None
    thread_ts: str | None = None
    attachments: list[JsonDict] | None = None
    metadata: JsonDict | None = None
    edited: int = 0
    edited_ts: str | None = None
    reply_count: int = 0
    latest_reply: str | None = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_slack(self, *, include_metadata: bool = True) -> JsonDict:
        """The message object as Slack returns it (chat.postMessage, block_actions …).

        ``include_metadata=False`` leaves out ``metadata``, as ``conversations.history`` and
        ``conversations.replies`` do unless asked with ``include_all_metadata``.
        """
        out: JsonDict = {"type": "message", "ts": self.ts, "text": self.text}
        if self.user is not None:
            out["user"] = self.user
        if self.bot_id is not None:
            out["bot_id"] = self.bot_id
        if self.app_id is not None:
            out["app_id"] = self.app_id
        if self.team is not None:
            out["team"] = self.team
        out["blocks"] = [dict(b) for b in self.blocks]
        if self.attachments is not None:
            out["attachments"] = list(self.attachments)
        if self.metadata is not None and include_metadata:
            out["metadata"] = copy.deepcopy(self.metadata)
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.reply_count:
            out["reply_count"] = self.reply_count
            out["latest_reply"] = self.latest_reply
        if self.edited and self.edited_ts is not None:
            out["edited"] = {"user": self.user, "ts": self.edited_ts}
        return out


@dataclass
class EphemeralMessage:
    """A message only ``user`` can see in ``channel``."""

    channel: str
    user: str
    ts: str
    text: str = ""
    blocks: list[JsonDict] = field(default_factory=list)
    thread_ts: str | None = None
    attachments: list[JsonDict] | None = None
    source: str = "api"  # "api" (chat.postEphemeral), "response_url" or "ack"
    edited: int = 0

    def to_slack(self) -> JsonDict:
        out: JsonDict = {"type": "message", "ts": self.ts, "text": self.text}
        out["blocks"] = [dict(b) for b in self.blocks]
        if self.attachments is not None:
            out["attachments"] = list(self.attachments)
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        return out


@dataclass
class Channel:
    """A conversation known to the emulator."""

    id: str
    name: str
    is_member: bool = True
    members: list[str] = field(default_factory=list)
    is_private: bool = False
    is_im: bool = False
    user: str | None = None  # the other party of an IM
    topic: str = ""
    purpose: str = ""
    created: int = 1_600_000_000
    is_archived: bool = False
    # Slack Connect with several installs: the workspaces (or, for an org-wide install,
    # orgs) whose bot is a member, by the team of the calling token. None: `is_member`
    # says it for every bot.
    bot_teams: list[str] | None = None

    def to_slack(self, *, bot_user_id: str, include_num_members: bool = False) -> JsonDict:
        if self.is_im:
            im: JsonDict = {
                "id": self.id,
                "created": self.created,
                "is_im": True,
                "is_org_shared": False,
                "user": self.user,
                "is_user_deleted": False,
                "priority": 0,
            }
            return im
        out: JsonDict = {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_general": self.name == "general",
            "is_member": self.is_member,
            "created": self.created,
            "creator": self.members[0] if self.members else "",
            "name_normalized": self.name,
            "topic": {"value": self.topic, "creator": "", "last_set": 0},
            "purpose": {"value": self.purpose, "creator": "", "last_set": 0},
        }
        if include_num_members:
            out["num_members"] = len(self.member_ids(bot_user_id))
        return out

    def member_ids(self, bot_user_id: str) -> list[str]:
        """Members as Slack lists them: the bot is included when it is a member."""
        members = list(self.members)
        if self.is_im and self.user is not None and self.user not in members:
            members.append(self.user)
        if (self.is_member or self.is_im) and bot_user_id not in members:
            members.append(bot_user_id)
        return members


@dataclass
class User:
    """A workspace user known to the emulator (``users.info``)."""

    id: str
    name: str
    real_name: str = ""
    team_id: str = ""
    tz: str = "Europe/Berlin"
    tz_label: str = ""
    tz_offset: int = 3600
    email: str | None = None
    is_bot: bool = False
    is_admin: bool = False
    deleted: bool = False
    locale: str = "en-US"

    def to_slack(self, *, include_locale: bool = False) -> JsonDict:
        real_name = self.real_name or self.name
        profile: JsonDict = {
            "real_name": real_name,
            "display_name": self.name,
            "real_name_normalized": real_name,
            "display_name_normalized": self.name,
            "image_48": "",
            "image_72": "",
            "team": self.team_id,
        }
        if self.email is not None:
            profile["email"] = self.email
        out: JsonDict = {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": real_name,
            "tz": self.tz,
            "tz_label": self.tz_label or self.tz,
            "tz_offset": self.tz_offset,
            "is_bot": self.is_bot,
            "is_admin": self.is_admin,
            "is_app_user": False,
            "updated": 1_700_000_000,
            "profile": profile,
        }
        if include_locale:
            out["locale"] = self.locale
        return out


class ButtonRef(NamedTuple):
    """Where a clickable element sits: enough to build a block_actions payload."""

    action_id: str
    value: str | None
    block_id: str | None
