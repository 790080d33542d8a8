"""``SlackEmulator``: a local HTTP server that plays Slack's Web API and response_urls."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from sandbox.http import DropConnection, HttpReply, HttpRequest, LoopbackServer

from . import blocks as blockkit
from .models import (
    ApiCall,
    ButtonRef,
    Channel,
    Delivery,
    EphemeralMessage,
    JsonDict,
    ResponsePost,
    StoredMessage,
    User,
)
from .oauth import OAuthError, OAuthSide

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_SCOPES: tuple[str, ...] = (
    "app_mentions:read",
    "channels:read",
    "chat:write",
    "chat:write.public",
    "commands",
    "groups:read",
    "im:history",
    "im:write",
    "users:read",
    "users:read.email",
)

#: Parameters that carry JSON; form-encoded clients send them as JSON strings.
_JSON_PARAMS = frozenset({"blocks", "attachments", "view", "metadata"})
_MAX_VIEW_BYTES = 250_000
_MAX_MODAL_STACK = 3
_MAX_MESSAGE_BLOCKS = 50
#: ``conversations.history`` / ``conversations.replies`` page sizes: (default, maximum).
_HISTORY_LIMITS = (100, 999)
_REPLIES_LIMITS = (1000, 1000)
#: Slack ignores metadata whose ``event_type`` has anything but these characters.
_EVENT_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


RouteHandler = Callable[[HttpRequest], HttpReply]
Listener = Callable[[ApiCall | ResponsePost], None]


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def payload(self) -> JsonDict:
        return {"ok": False, "error": self.error, **self.extra}


def _invalid_blocks(error: str, message: str, pointer: str) -> _ApiError:
    return _ApiError(
        error, response_metadata={"messages": [f"[ERROR] {message} [json-pointer:{pointer}]"]}
    )


def _rule_matches(
    rule_method: str, rule_channel: str | None, method: str, params: Mapping[str, Any]
) -> bool:
    if rule_method not in ("*", method):
        return False
    return rule_channel is None or params.get("channel") == rule_channel


@dataclass
class _Fault:
    """A refusal: for the next ``remaining`` matching calls, or (``remaining`` None) for every
    matching call until the emulator's clock reaches ``until``."""

    method: str
    status: int
    error: str
    retry_after: int | None
    remaining: int | None
    channel: str | None
    until: float | None = None

    def matches(self, method: str, params: Mapping[str, Any]) -> bool:
        return _rule_matches(self.method, self.channel, method, params)


@dataclass
class _DeliveryFault:
    """An ambiguous outcome: the call is applied, its answer comes late or not at all."""

    method: str
    kind: Delivery  # "late" or "dropped"
    seconds: float
    remaining: int
    channel: str | None

    def matches(self, method: str, params: Mapping[str, Any]) -> bool:
        return _rule_matches(self.method, self.channel, method, params)


@dataclass
class _Delay:
    method: str
    seconds: float
    remaining: int | None


@dataclass
class _Trigger:
    user_id: str
    issued_at: float
    used: bool = False


@dataclass
class _ResponseUrl:
    id: str
    channel: str | None
    user_id: str | None
    created_at: float
    origin: tuple[str, str, str] | None  # ("message" | "ephemeral", channel, ts)
    uses: int = 0
    last_posted: tuple[str, str, str] | None = None


@dataclass
class _State:
    calls: list[ApiCall] = field(default_factory=list)
    responses: list[ResponsePost] = field(default_factory=list)
    channels: dict[str, Channel] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    messages: dict[str, list[StoredMessage]] = field(default_factory=dict)
    ephemerals: list[EphemeralMessage] = field(default_factory=list)
    views: dict[str, JsonDict] = field(default_factory=dict)
    view_owner: dict[str, str] = field(default_factory=dict)
    view_errors: dict[str, dict[str, str]] = field(default_factory=dict)
    stacks: dict[str, list[str]] = field(default_factory=dict)
    home: dict[str, str] = field(default_factory=dict)
    triggers: dict[str, _Trigger] = field(default_factory=dict)
    response_urls: dict[str, _ResponseUrl] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    delays: list[_Delay] = field(default_factory=list)
    deliveries: list[_DeliveryFault] = field(default_factory=list)


class SlackEmulator:
    """Plays Slack's Web API and ``response_url`` endpoints on a local port.

    All state lives behind one lock; read accessors return deep copies (snapshots).

    Behaviour worth knowing (where Slack's is undocumented, these are the emulator's choices):

    * Auth: token from ``Authorization: Bearer`` or a ``token`` param; none -> ``not_authed``,
      one not starting with ``token_prefix`` -> ``invalid_auth``. Tokens issued by an install
      (``oauth``: ``oauth.v2.access``, rotation, ``uninstall``; see emulator/oauth.py) are
      their workspace's: ``auth.test`` answers for it, a revoked one -> ``token_revoked``,
      an expired one -> ``token_expired``.
    * Channels: unknown ids are auto-created (bot is a member) unless ``strict``; a user id
      (``U…``/``W…``) as channel means the bot's IM with that user (``D…``).
    * ``views.open`` replaces the user's modal stack; ``views.push`` without an open modal opens
      one; the stack holds at most 3 views.
    * response_url misuse answers HTTP 404 ``{"ok": false, "error": "invalid_url" |
      "used_url" | "expired_url"}``; ``replace_original``/``delete_original`` target the
      message the URL was issued for, else the last message posted through the same URL.
    * Message metadata (``{"event_type", "event_payload"}``) is stored by ``chat.postMessage``
      and ``chat.update`` and echoed in their answers, but ``conversations.history``/``replies``
      show it only with ``include_all_metadata``, as Slack does.
    """

    def __init__(
        self,
        *,
        team_id: str = "T0001",
        team_name: str = "Sandbox",
        team_domain: str = "sandbox",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0001",
        bot_name: str = "milestone-bot",
        app_id: str = "A0001",
        host: str = "127.0.0.1",
        port: int = 0,
        strict: bool = False,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        token_prefix: str = "xoxb-",
        trigger_ttl: float = 3.0,
        response_url_max_uses: int = 5,
        response_url_ttl: float = 1800.0,
        validate_blocks: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id
        self.host = host
        self.strict = strict
        self.scopes = tuple(scopes)
        # Installs into other workspaces, per-token identity, rotation (emulator/oauth.py).
        self.oauth = OAuthSide(app_id=app_id, scopes=self.scopes)
        self._token = ""  # the token of the call being answered (under the lock)
        self._request_headers: dict[str, str] = {}
        self.token_prefix = token_prefix
        self.trigger_ttl = trigger_ttl
        self.response_url_max_uses = response_url_max_uses
        self.response_url_ttl = response_url_ttl
        self.validate_blocks = validate_blocks
        # Where `apps.connections.open` sends a Socket Mode client (a ws:// URL of a
        # WebSocket server the caller runs); None answers as Slack does without one.
        self.socket_mode_url: str | None = None
        self._clock = clock
        self._requested_port = port
        self._lock = threading.RLock()
        self._state = _State()
        self._last_ts_micros = 0
        self._ids = itertools.count(1)
        self._routes: dict[str, RouteHandler] = {}
        self._listeners: list[Listener] = []
        self._server: LoopbackServer | None = None
        self._methods: dict[str, Callable[[JsonDict], JsonDict]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "oauth.v2.access": self._oauth_v2_access,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "users.lookupByEmail": self._users_lookup_by_email,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
        }
        self._add_bot_user()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackEmulator:
        """Bind and serve in a daemon thread. Returns ``self``."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = LoopbackServer(
            self.handle_http,
            host=self.host,
            port=self._requested_port,
            name="slack-emulator",
            server_version="SlackEmulator/1.0",
        )
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return self._server.port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Web API base for ``WebClient(base_url=...)``, with a trailing slash."""
        return f"{self.url}/api/"

    # ------------------------------------------------------------------ setup

    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_member: bool = True,
        members: Sequence[str] = (),
        is_private: bool = False,
        topic: str = "",
        purpose: str = "",
        bot_teams: Sequence[str] | None = None,
    ) -> Channel:
        """Declare a channel (replacing any previous definition with the same id).

        ``bot_teams``: a Slack Connect channel with the app installed on several sides:
        the workspaces (or orgs, for an org-wide install) whose bot is a member; a call
        made with another workspace's token finds itself no member (`not_in_channel`,
        `is_member: false`). None: ``is_member`` holds for every token."""
        channel = Channel(
            id=channel_id,
            name=name or channel_id.lower(),
            is_member=is_member,
            members=list(members),
            is_private=is_private or channel_id.startswith("G"),
            topic=topic,
            purpose=purpose,
            created=int(self._clock()),
            bot_teams=list(bot_teams) if bot_teams is not None else None,
        )
        with self._lock:
            self._state.channels[channel_id] = channel
            return copy.deepcopy(channel)

    def archive_channel(self, channel_id: str) -> None:
        """Archive a channel: posting and updating in it fail with `is_archived`."""
        self._set_archived(channel_id, True)

    def unarchive_channel(self, channel_id: str) -> None:
        self._set_archived(channel_id, False)

    def _set_archived(self, channel_id: str, archived: bool) -> None:
        with self._lock:
            channel = self._state.channels.get(channel_id)
            if channel is None:
                raise LookupError(f"unknown channel {channel_id}")
            channel.is_archived = archived

    def set_membership(
        self, channel_id: str, *, is_member: bool, team_id: str | None = None
    ) -> None:
        """Let the bot join (True) or leave (False) a channel; with ``team_id``, the bot
        of that installed workspace (or org) only."""
        with self._lock:
            channel = self._state.channels.get(channel_id)
            if channel is None:
                raise LookupError(f"unknown channel {channel_id}")
            if team_id is None:
                channel.is_member = is_member
                return
            teams = channel.bot_teams if channel.bot_teams is not None else []
            teams = [t for t in teams if t != team_id] + ([team_id] if is_member else [])
            channel.bot_teams = teams

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        team_id: str | None = None,
        tz: str = "Europe/Berlin",
        tz_label: str | None = None,
        tz_offset: int = 3600,
        email: str | None = None,
        is_bot: bool = False,
        is_admin: bool = False,
        deleted: bool = False,
        locale: str = "en-US",
    ) -> User:
        """Declare a user for ``users.info`` (replacing any previous one with that id)."""
        if user_id == self.bot_user_id and not is_bot:
            raise ValueError("emulated humans must not reuse the bot's user id")
        user = User(
            id=user_id,
            name=name,
            real_name=real_name if real_name is not None else name,
            team_id=team_id or self.team_id,
            tz=tz,
            tz_label=tz_label or tz,
            tz_offset=tz_offset,
            email=email,
            is_bot=is_bot,
            is_admin=is_admin,
            deleted=deleted,
            locale=locale,
        )
        with self._lock:
            self._state.users[user_id] = user
            return copy.deepcopy(user)

    def mount(self, prefix: str, handler: RouteHandler) -> None:
        """Serve extra paths (e.g. a browser UI) under ``prefix`` from this server."""
        if not prefix.startswith("/") or prefix.startswith(("/api/", "/response/")):
            raise ValueError(f"cannot mount at {prefix!r}")
        with self._lock:
            self._routes[prefix] = handler

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` (outside the lock) after every API call / response_url POST.

        Returns a function that removes the listener.
        """
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def reset(self) -> None:
        """Forget everything (calls, messages, views, channels, users, faults)."""
        with self._lock:
            self._state = _State()
            self._add_bot_user()

    def _add_bot_user(self) -> None:
        self._state.users[self.bot_user_id] = User(
            id=self.bot_user_id,
            name=self.bot_name,
            real_name=self.bot_name,
            team_id=self.team_id,
            tz="America/Los_Angeles",
            tz_offset=-28800,
            is_bot=True,
        )

    # ------------------------------------------------------------------ issued tokens

    def issue_trigger_id(self, user_id: str) -> str:
        """A trigger_id as Slack puts into an interaction; valid once, for ``trigger_ttl``."""
        now = self._clock()
        trigger_id = f"{int(now)}.{next(self._ids)}.{secrets.token_hex(16)}"
        with self._lock:
            self._state.triggers[trigger_id] = _Trigger(user_id=user_id, issued_at=now)
        return trigger_id

    def new_response_url(
        self,
        *,
        channel: str | None = None,
        user_id: str | None = None,
        message_ts: str | None = None,
        ephemeral: bool = False,
    ) -> str:
        """A fresh ``http://127.0.0.1:PORT/response/<id>`` for one interaction.

        ``channel``/``user_id`` say where replies show up; ``message_ts`` names the message
        the interaction came from (the target of ``replace_original``/``delete_original``).
        """
        url_id = secrets.token_urlsafe(18)
        origin = None
        if channel is not None and message_ts is not None:
            origin = ("ephemeral" if ephemeral else "message", channel, message_ts)
        entry = _ResponseUrl(
            id=url_id,
            channel=channel,
            user_id=user_id,
            created_at=self._clock(),
            origin=origin,
        )
        with self._lock:
            self._state.response_urls[url_id] = entry
        return f"{self.url}/response/{url_id}"

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: int = 1,
        times: int = 1,
        channel: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` ("*" = any) fail.

        * no ``status``/``error``: HTTP 429 ``ratelimited`` with ``Retry-After: retry_after``;
        * ``error`` only: HTTP 200 ``{"ok": false, "error": error}``;
        * ``status`` (e.g. 500): that status with ``error`` or a default error code.
        ``channel`` restricts the fault to calls whose ``channel`` param equals it. A failed call
        is not applied. Rules (``fail_next`` and ``fail_for``) apply in the order they were added.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        fault = self._new_fault(method, status, error, retry_after, channel, remaining=times)
        with self._lock:
            self._state.faults.append(fault)

    def fail_for(
        self,
        method: str,
        seconds: float,
        *,
        error: str | None = None,
        status: int | None = None,
        retry_after: int = 1,
        channel: str | None = None,
    ) -> None:
        """Make every call of ``method`` ("*" = any, ``auth.test`` included) fail for the next
        ``seconds`` of the emulator's clock, the way ``fail_next`` would; afterwards calls work.

        An outage is a window of time, not a number of calls: ``fail_for("*", 15,
        error="token_revoked")`` refuses the token however often the app retries meanwhile.
        """
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        until = self._clock() + seconds
        fault = self._new_fault(method, status, error, retry_after, channel, until=until)
        with self._lock:
            self._state.faults.append(fault)

    @staticmethod
    def _new_fault(
        method: str,
        status: int | None,
        error: str | None,
        retry_after: int,
        channel: str | None,
        *,
        remaining: int | None = None,
        until: float | None = None,
    ) -> _Fault:
        if status is None:
            status = 200 if error is not None else 429
        if error is None:
            if status == 200:
                raise ValueError("a 200 fault needs an error code")
            error = {429: "ratelimited"}.get(status, "internal_error")
        return _Fault(
            method=method,
            status=status,
            error=error,
            retry_after=int(retry_after) if status == 429 else None,
            remaining=remaining,
            channel=channel,
            until=until,
        )

    def answer_late(
        self, method: str, seconds: float, *, times: int = 1, channel: str | None = None
    ) -> None:
        """Apply the next ``times`` successful calls of ``method`` ("*" = any) at once, but send
        their answers only ``seconds`` later.

        A client whose timeout is shorter gives up although Slack did what it asked (e.g. the
        message is posted), which is what a retrying client must not turn into a duplicate.
        Calls that fail (a fault, a Slack error) are answered at once and use up nothing.
        """
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        self._add_delivery_fault(method, "late", seconds, times, channel)

    def drop_after_apply(self, method: str, *, times: int = 1, channel: str | None = None) -> None:
        """Apply the next ``times`` successful calls of ``method`` ("*" = any), then close the
        connection without answering (the client sees ``RemoteDisconnected``).

        slack_sdk's default ``ConnectionErrorRetryHandler`` retries such a call once, so the
        retry is applied a second time. Calls that fail are answered and use up nothing.
        """
        self._add_delivery_fault(method, "dropped", 0.0, times, channel)

    def _add_delivery_fault(
        self, method: str, kind: Delivery, seconds: float, times: int, channel: str | None
    ) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        rule = _DeliveryFault(
            method=method, kind=kind, seconds=seconds, remaining=times, channel=channel
        )
        with self._lock:
            self._state.deliveries.append(rule)

    def delay(self, method: str, seconds: float, *, times: int | None = None) -> None:
        """Answer ``method`` ("*" = any) only after ``seconds`` (``times=None``: until cleared)."""
        with self._lock:
            self._state.delays.append(_Delay(method=method, seconds=seconds, remaining=times))

    def clear_faults(self) -> None:
        """Drop all pending fault rules: ``fail_next``, ``fail_for`` (windows still open
        included), ``delay``, ``answer_late`` and ``drop_after_apply``."""
        with self._lock:
            self._state.faults.clear()
            self._state.delays.clear()
            self._state.deliveries.clear()

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._state.calls)

    def calls_to(self, method: str) -> list[ApiCall]:
        with self._lock:
            return [c for c in self._state.calls if c.method == method]

    @property
    def responses(self) -> list[ResponsePost]:
        with self._lock:
            return list(self._state.responses)

    def channel(self, channel_id: str) -> Channel | None:
        with self._lock:
            channel = self._state.channels.get(channel_id)
            return copy.deepcopy(channel)

    @property
    def channels(self) -> dict[str, Channel]:
        with self._lock:
            return copy.deepcopy(self._state.channels)

    def user(self, user_id: str) -> User | None:
        with self._lock:
            return copy.deepcopy(self._state.users.get(user_id))

    @property
    def users(self) -> dict[str, User]:
        with self._lock:
            return copy.deepcopy(self._state.users)

    def dm_channel_id(self, user_id: str) -> str:
        """Id of the bot's IM with ``user_id`` (created on first use)."""
        with self._lock:
            return self._dm_channel(user_id).id

    def direct_messages(self, user_id: str) -> list[StoredMessage]:
        """What the app posted in its IM with ``user_id``, in ``ts`` order (none if the IM
        was never opened)."""
        with self._lock:
            for channel in self._state.channels.values():
                if channel.is_im and channel.user == user_id:
                    return [copy.deepcopy(m) for m in self._state.messages.get(channel.id, [])]
            return []

    def messages(self, channel: str, *, include_replies: bool = True) -> list[StoredMessage]:
        """Messages of ``channel`` in ``ts`` order (thread replies included by default)."""
        with self._lock:
            stored = self._state.messages.get(channel, [])
            return [copy.deepcopy(m) for m in stored if include_replies or not m.is_reply]

    def message(self, channel: str, ts: str) -> StoredMessage | None:
        with self._lock:
            return copy.deepcopy(self._find_message(channel, ts))

    def thread(self, channel: str, ts: str) -> list[StoredMessage]:
        """The parent message followed by its replies (like ``conversations.replies``)."""
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._state.messages.get(channel, [])
                if m.ts == ts or m.thread_ts == ts
            ]

    def ephemerals(
        self, channel: str | None = None, user: str | None = None
    ) -> list[EphemeralMessage]:
        with self._lock:
            return [
                copy.deepcopy(e)
                for e in self._state.ephemerals
                if (channel is None or e.channel == channel) and (user is None or e.user == user)
            ]

    @property
    def views(self) -> dict[str, JsonDict]:
        """Every view ever opened/published, by id (closed ones included)."""
        with self._lock:
            return copy.deepcopy(self._state.views)

    def view(self, view_id: str) -> JsonDict | None:
        with self._lock:
            return copy.deepcopy(self._state.views.get(view_id))

    def view_owner(self, view_id: str) -> str | None:
        with self._lock:
            return self._state.view_owner.get(view_id)

    def home_view(self, user_id: str) -> JsonDict | None:
        with self._lock:
            view_id = self._state.home.get(user_id)
            return None if view_id is None else copy.deepcopy(self._state.views[view_id])

    def open_views(self, user_id: str) -> list[JsonDict]:
        """The user's modal stack, bottom (root) first."""
        with self._lock:
            stack = self._state.stacks.get(user_id, [])
            return [copy.deepcopy(self._state.views[v]) for v in stack]

    def is_view_open(self, view_id: str) -> bool:
        with self._lock:
            return any(view_id in s for s in self._state.stacks.values())

    def view_errors(self, view_id: str) -> dict[str, str]:
        """Errors shown by the last ``response_action: errors`` for ``view_id``."""
        with self._lock:
            return dict(self._state.view_errors.get(view_id, {}))

    def find_button(
        self,
        channel: str,
        ts: str,
        *,
        label_startswith: str | None = None,
        action_id: str | None = None,
        value: str | None = None,
        user: str | None = None,
    ) -> ButtonRef:
        """A button in the stored message (or the ephemeral of ``user``) at ``channel``/``ts``."""
        with self._lock:
            blocks = self._blocks_at(channel, ts, user)
        return blockkit.find_button(
            blocks, label_startswith=label_startswith, action_id=action_id, value=value
        )

    def _blocks_at(self, channel: str, ts: str, user: str | None) -> list[JsonDict]:
        msg = self._find_message(channel, ts)
        if msg is not None:
            return copy.deepcopy(msg.blocks)
        eph = self._find_ephemeral(channel, ts, user)
        if eph is not None:
            return copy.deepcopy(eph.blocks)
        raise LookupError(f"no message {ts} in {channel}")

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,
        interval: float = 0.02,
        message: str | None = None,
    ) -> T:
        """Poll ``predicate`` until it returns something truthy and return that.

        ``LookupError``/``AssertionError`` raised by the predicate count as "not yet".
        On timeout raises ``AssertionError`` naming the predicate and the recent API calls.
        """
        deadline = time.monotonic() + timeout
        last_exc: BaseException | None = None
        while True:
            try:
                result = predicate()
                if result:
                    return result
            except (LookupError, AssertionError) as exc:
                last_exc = exc
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        what = message or getattr(predicate, "__qualname__", repr(predicate))
        recent = ", ".join(
            f"{c.method}{'' if c.ok else '!' + (c.error or str(c.status))}"
            f"{'' if c.delivery == 'sent' else '(' + c.delivery + ')'}"
            for c in self.calls[-15:]
        )
        detail = f"; last error: {last_exc!r}" if last_exc is not None else ""
        raise AssertionError(
            f"timed out after {timeout:.2f}s waiting for {what}{detail}; "
            f"recent API calls: [{recent or 'none'}]"
        )

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[ApiCall]:
        """Wait until ``method`` was called at least ``count`` times; return those calls."""

        def enough() -> list[ApiCall]:
            calls = self.calls_to(method)
            return calls if len(calls) >= count else []

        return self.wait_for(enough, timeout=timeout, message=f"{count} call(s) to {method}")

    # ------------------------------------------------------------------ Slack-side actions

    def post_user_message(
        self,
        channel: str,
        user_id: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: Sequence[JsonDict] = (),
    ) -> StoredMessage:
        """Store a message written by a human (the driver sends the matching event)."""
        with self._lock:
            try:
                ch = self._resolve_channel(channel)
            except _ApiError as exc:
                raise LookupError(f"channel {channel!r}: {exc.error}") from exc
            msg = StoredMessage(
                channel=ch.id,
                ts=self._next_ts(),
                text=text,
                blocks=copy.deepcopy(list(blocks)),
                user=user_id,
                team=self.team_id,
                thread_ts=thread_ts,
            )
            self._store_message(msg)
            return copy.deepcopy(msg)

    def close_view(self, user_id: str, view_id: str | None = None, *, clear: bool = False) -> None:
        """Close ``view_id`` (default: the top view) and everything above it, or all if
        ``clear``."""
        with self._lock:
            stack = self._state.stacks.get(user_id, [])
            if clear or not stack:
                stack.clear()
                return
            target = view_id or stack[-1]
            if target in stack:
                del stack[stack.index(target) :]

    def apply_view_submission_response(
        self, user_id: str, view_id: str, status: int, body: bytes, content_type: str = ""
    ) -> None:
        """What Slack does with the app's answer to a view_submission of ``view_id``.

        non-2xx: the modal stays open; empty 200: the view closes; ``errors``: it stays open
        and the errors are kept (``view_errors``); ``update``: replaced in place; ``push``: a new
        view on top; ``clear``: the whole stack closes.
        """
        if not 200 <= status < 300:
            return
        payload: Any = None
        if body.strip() and "json" in content_type.lower():
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
        action = payload.get("response_action") if isinstance(payload, dict) else None
        with self._lock:
            self._state.view_errors.pop(view_id, None)
            if action == "errors":
                errors = payload.get("errors") if isinstance(payload, dict) else None
                self._state.view_errors[view_id] = dict(errors or {})
                return
            if action == "update" and isinstance(payload, dict):
                current = self._state.views.get(view_id)
                if current is not None and isinstance(payload.get("view"), dict):
                    self._replace_view(current, payload["view"])
                return
            if action == "push" and isinstance(payload, dict):
                stack = self._state.stacks.setdefault(user_id, [])
                if isinstance(payload.get("view"), dict) and len(stack) < _MAX_MODAL_STACK:
                    self._push_view(user_id, payload["view"])
                return
            if action == "clear":
                self._state.stacks.get(user_id, []).clear()
                return
        self.close_view(user_id, view_id)

    def apply_ack_reply(self, response_url: str, payload: Mapping[str, Any]) -> None:
        """Show a slash command's non-empty ack body (text/blocks) like Slack does."""
        url_id = response_url.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            entry = self._state.response_urls.get(url_id)
            if entry is None:
                raise LookupError(f"unknown response_url {response_url}")
            try:
                self._apply_response(entry, dict(payload), source="ack")
            except _ApiError as exc:
                raise ValueError(f"Slack would reject this reply: {exc.error}") from exc

    def set_view_state(self, view_id: str, values: Mapping[str, Any]) -> None:
        """Remember the input state the (emulated) user has typed into ``view_id``."""
        with self._lock:
            view = self._state.views.get(view_id)
            if view is None:
                raise LookupError(f"unknown view {view_id}")
            view["state"] = {"values": copy.deepcopy(dict(values))}

    # ------------------------------------------------------------------ HTTP routing

    def handle_http(self, request: HttpRequest) -> HttpReply:
        """Route one HTTP request (called from the server threads).

        Raises ``DropConnection`` when the request must go unanswered (``drop_after_apply``);
        may block for an ``answer_late`` pause after the call took effect.
        """
        path = request.path
        if path.startswith("/api/"):
            return self._handle_api(request, path[len("/api/") :])
        if path.startswith("/response/"):
            return self._handle_response_url(request, path[len("/response/") :])
        with self._lock:
            routes = sorted(self._routes.items(), key=lambda kv: -len(kv[0]))
        for prefix, handler in routes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return handler(request)
        if path in ("/", "/health"):
            return HttpReply.json(200, {"ok": True, "emulator": "slack"})
        method = path.lstrip("/")
        if "." in method and "/" not in method:  # WebClient(base_url=emulator.url)
            return self._handle_api(request, method)
        return HttpReply.json(404, {"ok": False, "error": "unknown_path"})

    def _handle_api(self, request: HttpRequest, method: str) -> HttpReply:
        arrived = self._clock()
        pause = self._take_delay(method)
        if pause > 0:
            time.sleep(pause)
        headers = {
            "x-oauth-scopes": ",".join(self.scopes),
            "x-accepted-oauth-scopes": "",
        }
        status = 200
        params: JsonDict = {}
        ambiguous: _DeliveryFault | None = None
        with self._lock:
            try:
                params = self._parse_params(request)
                self._check_auth(request, params, method)
                fault = self._take_fault(method, params)
                if fault is not None:
                    status = fault.status
                    if fault.retry_after is not None:
                        headers["retry-after"] = str(fault.retry_after)
                    raise _ApiError(fault.error)
                handler = self._methods.get(method)
                response = handler(params) if handler is not None else {"ok": True}
                # Only an applied call has an ambiguous outcome worth testing.
                ambiguous = self._take_delivery_fault(method, params)
            except _ApiError as exc:
                response = exc.payload()
            call = ApiCall(
                method=method,
                params=copy.deepcopy(params),
                headers=dict(request.headers),
                at=arrived,
                http_method=request.method,
                status=status,
                response=copy.deepcopy(response),
                delivery=ambiguous.kind if ambiguous is not None else "sent",
            )
            self._state.calls.append(call)
            listeners = list(self._listeners)
        self._notify(listeners, call)
        if ambiguous is not None:
            if ambiguous.kind == "dropped":
                raise DropConnection(method)
            time.sleep(ambiguous.seconds)  # outside the lock: the emulator keeps serving meanwhile
        return HttpReply.json(status, response, headers)

    def _notify(self, listeners: Sequence[Listener], item: ApiCall | ResponsePost) -> None:
        for listener in listeners:
            try:
                listener(item)
            except Exception:
                logger.exception("emulator listener failed")

    def _parse_params(self, request: HttpRequest) -> JsonDict:
        params: JsonDict = dict(parse_qsl(request.query, keep_blank_values=True))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.body.strip():
            if content_type == "application/json":
                try:
                    data = json.loads(request.body.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as exc:
                    raise _ApiError("invalid_json") from exc
                if not isinstance(data, dict):
                    raise _ApiError("invalid_json")
                params.update(data)
            else:
                text = request.body.decode("utf-8", errors="replace")
                params.update(parse_qsl(text, keep_blank_values=True))
        for key in _JSON_PARAMS:
            value = params.get(key)
            if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    pass  # reported by the method as *_format errors
        return params

    def _check_auth(self, request: HttpRequest, params: JsonDict, method: str = "") -> None:
        auth = request.headers.get("authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        self._request_headers = dict(request.headers)
        if method == "oauth.v2.access":
            return  # the app's client id and secret, checked by the method itself
        if not token:
            token = str(params.get("token") or "")
        if not token:
            raise _ApiError("not_authed")
        self._token = token
        if self.oauth.knows(token):  # issued by an install: that workspace's token
            try:
                self.oauth.check(token, self._clock())
            except OAuthError as exc:
                raise _ApiError(exc.error) from None
            return
        # Socket Mode connects with the app-level token; everything else with the bot's.
        prefix = "xapp-" if method == "apps.connections.open" else self.token_prefix
        if not token.startswith(prefix):
            raise _ApiError("invalid_auth")

    def _take_fault(self, method: str, params: JsonDict) -> _Fault | None:
        now = self._clock()
        # fail_for windows that have closed are gone for good, even if the clock went back.
        self._state.faults = [f for f in self._state.faults if f.until is None or now < f.until]
        for fault in self._state.faults:
            if fault.matches(method, params):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._state.faults.remove(fault)
                return fault
        return None

    def _take_delivery_fault(self, method: str, params: JsonDict) -> _DeliveryFault | None:
        for rule in self._state.deliveries:
            if rule.matches(method, params):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._state.deliveries.remove(rule)
                return rule
        return None

    def _take_delay(self, method: str) -> float:
        with self._lock:
            for rule in self._state.delays:
                if rule.method in ("*", method):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._state.delays.remove(rule)
                    return rule.seconds
        return 0.0

    # ------------------------------------------------------------------ response_url

    def _handle_response_url(self, request: HttpRequest, url_id: str) -> HttpReply:
        if request.method != "POST":
            return HttpReply.json(405, {"ok": False, "error": "method_not_allowed"})
        body = self._parse_response_body(request)
        now = self._clock()
        url = f"{self.url}/response/{url_id}"
        with self._lock:
            entry = self._state.response_urls.get(url_id)
            status, error = 200, None
            if body is None:
                status, error = 400, "invalid_payload"
            elif entry is None:
                status, error = 404, "invalid_url"
            elif now - entry.created_at > self.response_url_ttl:
                status, error = 404, "expired_url"
            elif entry.uses >= self.response_url_max_uses:
                status, error = 404, "used_url"
            else:
                entry.uses += 1
                try:
                    self._apply_response(entry, body, source="response_url")
                except _ApiError as exc:
                    status, error = 400, exc.error
            post = ResponsePost(url=url, body=body or {}, at=now, status=status, error=error)
            self._state.responses.append(post)
            listeners = list(self._listeners)
        self._notify(listeners, post)
        if error is not None:
            return HttpReply.json(status, {"ok": False, "error": error})
        return HttpReply.json(200, {"ok": True})

    @staticmethod
    def _parse_response_body(request: HttpRequest) -> JsonDict | None:
        raw = request.body.decode("utf-8", errors="replace").strip()
        if not raw.startswith("{"):
            form = dict(parse_qsl(raw, keep_blank_values=True))
            raw = form.get("payload", "")
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _apply_response(self, entry: _ResponseUrl, body: JsonDict, *, source: str) -> None:
        text = str(body.get("text") or "")
        blocks = self._blocks_param(body, "blocks")
        target = entry.origin or entry.last_posted
        if _truthy(body.get("delete_original")):
            if target is not None:
                self._delete_target(target)
            return
        if _truthy(body.get("replace_original")) and target is not None:
            self._replace_target(target, text, blocks, body)
            return
        if entry.channel is None:
            return
        thread_ts = body.get("thread_ts")
        if body.get("response_type") == "in_channel":
            self._resolve_channel(entry.channel)
            msg = StoredMessage(
                channel=entry.channel,
                ts=self._next_ts(),
                text=text,
                blocks=blocks or [],
                user=self.bot_user_id,
                bot_id=self.bot_id,
                app_id=self.app_id,
                team=self.team_id,
                thread_ts=str(thread_ts) if thread_ts else None,
                attachments=self._list_param(body, "attachments"),
            )
            self._store_message(msg)
            entry.last_posted = ("message", msg.channel, msg.ts)
        elif entry.user_id is not None:
            eph = EphemeralMessage(
                channel=entry.channel,
                user=entry.user_id,
                ts=self._next_ts(),
                text=text,
                blocks=blocks or [],
                thread_ts=str(thread_ts) if thread_ts else None,
                attachments=self._list_param(body, "attachments"),
                source=source,
            )
            self._state.ephemerals.append(eph)
            entry.last_posted = ("ephemeral", eph.channel, eph.ts)

    def _delete_target(self, target: tuple[str, str, str]) -> None:
        kind, channel, ts = target
        if kind == "message":
            msg = self._find_message(channel, ts)
            if msg is not None:
                self._remove_message(msg)
        else:
            self._state.ephemerals = [
                e for e in self._state.ephemerals if not (e.channel == channel and e.ts == ts)
            ]

    def _replace_target(
        self,
        target: tuple[str, str, str],
        text: str,
        blocks: list[JsonDict] | None,
        body: JsonDict,
    ) -> None:
        kind, channel, ts = target
        attachments = self._list_param(body, "attachments")
        if kind == "message":
            msg = self._find_message(channel, ts)
            if msg is not None:
                msg.text, msg.blocks = text, blocks or []
                if attachments is not None:
                    msg.attachments = attachments
                msg.edited += 1
                msg.edited_ts = self._next_ts()
            return
        for eph in self._state.ephemerals:
            if eph.channel == channel and eph.ts == ts:
                eph.text, eph.blocks = text, blocks or []
                if attachments is not None:
                    eph.attachments = attachments
                eph.edited += 1

    # ------------------------------------------------------------------ state helpers

    def _next_ts(self) -> str:
        micros = int(self._clock() * 1_000_000)
        if micros <= self._last_ts_micros:
            micros = self._last_ts_micros + 1
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08X}"

    def _dm_channel(self, user_id: str) -> Channel:
        for channel in self._state.channels.values():
            if channel.is_im and channel.user == user_id:
                return channel
        channel = Channel(
            id="D" + user_id[1:],
            name="directmessage",
            is_member=True,
            is_im=True,
            user=user_id,
            members=[user_id],
            created=int(self._clock()),
        )
        self._state.channels[channel.id] = channel
        return channel

    def _resolve_channel(self, ref: Any) -> Channel:
        if not isinstance(ref, str) or not ref:
            raise _ApiError("channel_not_found")
        if ref.startswith("#"):
            for channel in self._state.channels.values():
                if channel.name == ref[1:]:
                    return channel
            raise _ApiError("channel_not_found")
        known = self._state.channels.get(ref)
        if known is not None:
            return known
        if ref[0] in "UW" and (ref in self._state.users or not self.strict):
            return self._dm_channel(ref)
        if self.strict:
            raise _ApiError("channel_not_found")
        channel = Channel(
            id=ref,
            name=ref.lower(),
            is_private=ref.startswith("G"),
            is_im=ref.startswith("D"),
            created=int(self._clock()),
        )
        self._state.channels[ref] = channel
        return channel

    def _require_member(self, channel: Channel) -> None:
        if channel.is_archived:
            raise _ApiError("is_archived")
        if not self._caller_is_member(channel):
            raise _ApiError("not_in_channel")

    def _caller_is_member(self, channel: Channel) -> bool:
        """Whether the bot of the calling token is in the channel."""
        if channel.is_im:
            return True
        if channel.bot_teams is None:
            return channel.is_member
        return self._caller()[2] in channel.bot_teams

    def _caller(self) -> tuple[str, str, str]:
        """(bot user, bot id, team) of the calling token: an installed workspace's bot
        for a token its install was issued, else the emulator's own bot."""
        team_id = self.oauth.team_of_token(self._token)
        workspace = self.oauth.workspaces.get(team_id or "")
        if workspace is not None:
            return workspace.bot_user_id, workspace.bot_id, workspace.team_id
        return self.bot_user_id, self.bot_id, self.team_id

    def _find_message(self, channel: str, ts: str) -> StoredMessage | None:
        for msg in self._state.messages.get(channel, []):
            if msg.ts == ts:
                return msg
        return None

    def _find_ephemeral(self, channel: str, ts: str, user: str | None) -> EphemeralMessage | None:
        for eph in self._state.ephemerals:
            if eph.channel == channel and eph.ts == ts and (user is None or eph.user == user):
                return eph
        return None

    def _store_message(self, msg: StoredMessage) -> None:
        self._state.messages.setdefault(msg.channel, []).append(msg)
        if msg.is_reply and msg.thread_ts is not None:
            parent = self._find_message(msg.channel, msg.thread_ts)
            if parent is not None:
                parent.thread_ts = parent.ts
                parent.reply_count += 1
                parent.latest_reply = msg.ts

    def _remove_message(self, msg: StoredMessage) -> None:
        self._state.messages[msg.channel].remove(msg)
        if msg.is_reply and msg.thread_ts is not None:
            parent = self._find_message(msg.channel, msg.thread_ts)
            if parent is not None and parent.reply_count:
                parent.reply_count -= 1
                replies = [m.ts for m in self._state.messages[msg.channel] if m.is_reply]
                parent.latest_reply = replies[-1] if replies else None

    def _blocks_param(self, params: Mapping[str, Any], key: str) -> list[JsonDict] | None:
        if key not in params or params[key] is None:
            return None
        value = params[key]
        if value == "":
            return []
        if not isinstance(value, list) or not all(isinstance(b, dict) for b in value):
            raise _ApiError("invalid_blocks_format")
        blocks = copy.deepcopy(value)
        if self.validate_blocks:
            self._validate_message_blocks(blocks)
        return blocks

    @staticmethod
    def _list_param(params: Mapping[str, Any], key: str) -> list[JsonDict] | None:
        value = params.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, list):
            raise _ApiError(f"invalid_{key}")
        return copy.deepcopy(value)

    @staticmethod
    def _validate_message_blocks(blocks: list[JsonDict]) -> None:
        if len(blocks) > _MAX_MESSAGE_BLOCKS:
            raise _invalid_blocks("invalid_blocks", "no more than 50 items allowed", "/blocks")
        for index, raw in enumerate(blocks):
            try:
                parsed = Block.parse(raw)
                if parsed is None:
                    raise ValueError(f"unknown block type {raw.get('type')!r}")
                parsed.to_dict()
            except Exception as exc:  # SlackObjectFormationError, TypeError, ValueError …
                raise _invalid_blocks("invalid_blocks", str(exc), f"/blocks/{index}") from exc

    # ------------------------------------------------------------------ methods: auth

    def _api_test(self, params: JsonDict) -> JsonDict:
        return {"ok": True, "args": {k: v for k, v in params.items() if k != "token"}}

    def _apps_connections_open(self, params: JsonDict) -> JsonDict:
        if self.socket_mode_url is None:
            raise _ApiError("not_allowed_token_type")
        return {"ok": True, "url": self.socket_mode_url}

    def _oauth_v2_access(self, params: JsonDict) -> JsonDict:
        try:
            return self.oauth.access(params, self._request_headers, self._clock())
        except OAuthError as exc:
            raise _ApiError(exc.error) from None

    def _auth_test(self, params: JsonDict) -> JsonDict:
        team_id = self.oauth.team_of_token(self._token)
        workspace = self.oauth.workspaces.get(team_id or "")
        if workspace is not None:
            return {
                "ok": True,
                "url": f"https://{workspace.team_id.lower()}.slack.com/",
                "team": workspace.team_name,
                "user": self.bot_name,
                "team_id": workspace.team_id,
                "user_id": workspace.bot_user_id,
                "bot_id": workspace.bot_id,
                "enterprise_id": workspace.enterprise_id,
                "is_enterprise_install": workspace.is_enterprise_install,
            }
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    # ------------------------------------------------------------------ methods: chat

    def _chat_post_message(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        self._require_member(channel)
        text = _opt_str(params.get("text")) or ""
        blocks = self._blocks_param(params, "blocks")
        attachments = self._list_param(params, "attachments")
        if not text and not blocks and not attachments:
            raise _ApiError("no_text")
        metadata, warning = self._metadata_param(params)
        bot_user_id, bot_id, team_id = self._caller()  # posted as the calling token's bot
        msg = StoredMessage(
            channel=channel.id,
            ts=self._next_ts(),
            text=text,
            blocks=blocks or [],
            user=bot_user_id,
            bot_id=bot_id,
            app_id=self.app_id,
            team=team_id,
            thread_ts=_opt_str(params.get("thread_ts")) or None,
            attachments=attachments,
            metadata=metadata or None,
        )
        self._store_message(msg)
        # The answer's message carries the metadata it was posted with (history hides it).
        answer = {"ok": True, "channel": channel.id, "ts": msg.ts, "message": msg.to_slack()}
        return _with_warning(answer, warning)

    @staticmethod
    def _metadata_param(params: Mapping[str, Any]) -> tuple[JsonDict | None, str | None]:
        """``(metadata, warning)`` from the ``metadata`` param (a dict, or a JSON string in a
        form body). None: none given (or ignored); ``{}``: given empty (chat.update removes).

        Like Slack, an unparsable value is an error, while metadata without a valid
        ``event_type`` and an object ``event_payload`` is ignored with a warning.
        """
        value = params.get("metadata")
        if value is None or value == "":
            return None, None
        if not isinstance(value, dict):
            raise _ApiError("invalid_metadata_format")
        if not value:
            return {}, None
        event_type = value.get("event_type")
        valid = (
            isinstance(event_type, str)
            and bool(event_type)
            and set(event_type) <= _EVENT_TYPE_CHARS
            and isinstance(value.get("event_payload"), dict)
        )
        if not valid:
            return None, "invalid_metadata_schema"
        return {
            "event_type": event_type,
            "event_payload": copy.deepcopy(value["event_payload"]),
        }, None

    def _own_message(self, params: JsonDict, ts_key: str, error: str) -> StoredMessage:
        channel = self._resolve_channel(params.get("channel"))
        ts = _opt_str(params.get(ts_key))
        msg = self._find_message(channel.id, ts) if ts else None
        if msg is None:
            raise _ApiError("message_not_found")
        if msg.user != self._caller()[0]:  # only its poster edits or deletes a message
            raise _ApiError(error)
        return msg

    def _chat_update(self, params: JsonDict) -> JsonDict:
        msg = self._own_message(params, "ts", "cant_update_message")
        channel = self._state.channels.get(msg.channel)
        if channel is not None and channel.is_archived:
            raise _ApiError("is_inactive")  # Slack: not in a frozen, archived or deleted channel
        # Validate everything before changing anything: a refused update leaves no trace.
        blocks = self._blocks_param(params, "blocks")
        attachments = self._list_param(params, "attachments")
        metadata, warning = self._metadata_param(params)
        if "text" in params and params["text"] is not None:
            msg.text = str(params["text"])
        if blocks is not None:
            msg.blocks = blocks
        if attachments is not None:
            msg.attachments = attachments
        if metadata is not None:  # absent keeps the old metadata; an empty object removes it
            msg.metadata = metadata or None
        msg.edited += 1
        msg.edited_ts = self._next_ts()
        answer = {
            "ok": True,
            "channel": msg.channel,
            "ts": msg.ts,
            "text": msg.text,
            "message": msg.to_slack(),
        }
        return _with_warning(answer, warning)

    def _chat_delete(self, params: JsonDict) -> JsonDict:
        msg = self._own_message(params, "ts", "cant_delete_message")
        self._remove_message(msg)
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _chat_post_ephemeral(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        self._require_member(channel)
        user = _opt_str(params.get("user"))
        if not user:
            raise _ApiError("user_not_found")
        if self.strict and user not in self._state.users:
            raise _ApiError("user_not_found")
        if channel.members and user not in channel.member_ids(self.bot_user_id):
            raise _ApiError("user_not_in_channel")
        text = _opt_str(params.get("text")) or ""
        blocks = self._blocks_param(params, "blocks")
        attachments = self._list_param(params, "attachments")
        if not text and not blocks and not attachments:
            raise _ApiError("no_text")
        eph = EphemeralMessage(
            channel=channel.id,
            user=user,
            ts=self._next_ts(),
            text=text,
            blocks=blocks or [],
            thread_ts=_opt_str(params.get("thread_ts")) or None,
            attachments=attachments,
        )
        self._state.ephemerals.append(eph)
        return {"ok": True, "message_ts": eph.ts}

    def _chat_get_permalink(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        ts = _opt_str(params.get("message_ts"))
        msg = self._find_message(channel.id, ts) if ts else None
        if msg is None:
            raise _ApiError("message_not_found")
        link = f"{self.url}/archives/{channel.id}/p{msg.ts.replace('.', '')}"
        if msg.is_reply:
            link += f"?thread_ts={msg.thread_ts}&cid={channel.id}"
        return {"ok": True, "channel": channel.id, "permalink": link}

    # ------------------------------------------------------------------ methods: views

    def _view_param(self, params: JsonDict, *, expected_type: str | None) -> JsonDict:
        raw = params.get("view")
        if isinstance(raw, str):
            raise _ApiError("invalid_arguments", response_metadata={"messages": ["bad view"]})
        if not isinstance(raw, dict) or "type" not in raw:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: view"]},
            )
        if expected_type is not None and raw["type"] != expected_type:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={
                    "messages": [f"[ERROR] must be '{expected_type}' [json-pointer:/view/type]"]
                },
            )
        if len(json.dumps(raw)) > _MAX_VIEW_BYTES:
            raise _ApiError("view_too_large")
        if self.validate_blocks:
            try:
                View(**raw).to_dict()
            except Exception as exc:
                raise _invalid_blocks("invalid_arguments", str(exc), "/view") from exc
        return copy.deepcopy(raw)

    def _check_external_id(self, raw: JsonDict, replacing: str | None = None) -> None:
        external_id = raw.get("external_id")
        if not external_id:
            return
        for view_id, view in self._state.views.items():
            if view_id == replacing or view.get("external_id") != external_id:
                continue
            if self._is_live(view_id):
                raise _ApiError("duplicate_external_id")

    def _is_live(self, view_id: str) -> bool:
        return view_id in self._state.home.values() or any(
            view_id in stack for stack in self._state.stacks.values()
        )

    def _consume_trigger(self, params: JsonDict) -> _Trigger:
        trigger_id = _opt_str(params.get("trigger_id")) or _opt_str(
            params.get("interactivity_pointer")
        )
        if not trigger_id:
            raise _ApiError("invalid_arguments")
        trigger = self._state.triggers.get(trigger_id)
        if trigger is None:
            raise _ApiError("invalid_trigger_id")
        if trigger.used:
            raise _ApiError("exchanged_trigger_id")
        if self._clock() - trigger.issued_at > self.trigger_ttl:
            raise _ApiError("expired_trigger_id")
        return trigger

    def _new_hash(self) -> str:
        return f"{int(self._clock())}.{secrets.token_hex(4)}"

    def _materialize_view(
        self,
        raw: JsonDict,
        *,
        view_id: str,
        previous_view_id: str | None,
        root_view_id: str,
    ) -> JsonDict:
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": raw.get("type", "modal"),
            "callback_id": raw.get("callback_id", ""),
            "private_metadata": raw.get("private_metadata", ""),
            "title": raw.get("title"),
            "submit": raw.get("submit"),
            "close": raw.get("close"),
            "blocks": copy.deepcopy(raw.get("blocks") or []),
            "state": {"values": {}},
            "hash": self._new_hash(),
            "clear_on_close": bool(raw.get("clear_on_close", False)),
            "notify_on_close": bool(raw.get("notify_on_close", False)),
            "previous_view_id": previous_view_id,
            "root_view_id": root_view_id,
            "app_id": self.app_id,
            "external_id": raw.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _push_view(self, user_id: str, raw: JsonDict) -> JsonDict:
        stack = self._state.stacks.setdefault(user_id, [])
        view_id = self._new_id("V")
        previous = stack[-1] if stack else None
        root = stack[0] if stack else view_id
        view = self._materialize_view(
            raw, view_id=view_id, previous_view_id=previous, root_view_id=root
        )
        self._state.views[view_id] = view
        self._state.view_owner[view_id] = user_id
        stack.append(view_id)
        return view

    def _replace_view(self, current: JsonDict, raw: JsonDict) -> JsonDict:
        replacement = self._materialize_view(
            raw,
            view_id=current["id"],
            previous_view_id=current.get("previous_view_id"),
            root_view_id=current.get("root_view_id") or current["id"],
        )
        current.clear()
        current.update(replacement)
        return current

    def _views_open(self, params: JsonDict) -> JsonDict:
        raw = self._view_param(params, expected_type="modal")
        self._check_external_id(raw)
        trigger = self._consume_trigger(params)
        trigger.used = True
        self._state.stacks[trigger.user_id] = []
        view = self._push_view(trigger.user_id, raw)
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_push(self, params: JsonDict) -> JsonDict:
        raw = self._view_param(params, expected_type="modal")
        self._check_external_id(raw)
        trigger = self._consume_trigger(params)
        if len(self._state.stacks.get(trigger.user_id, [])) >= _MAX_MODAL_STACK:
            raise _ApiError("push_limit_reached")
        trigger.used = True
        view = self._push_view(trigger.user_id, raw)
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_update(self, params: JsonDict) -> JsonDict:
        view_id = _opt_str(params.get("view_id"))
        external_id = _opt_str(params.get("external_id"))
        if not view_id and not external_id:
            raise _ApiError("invalid_arguments")
        current: JsonDict | None = None
        if view_id:
            current = self._state.views.get(view_id)
        else:
            for candidate_id, candidate in self._state.views.items():
                if candidate.get("external_id") == external_id and self._is_live(candidate_id):
                    current = candidate
        if current is None or not self._is_live(current["id"]):
            raise _ApiError("not_found")
        raw = self._view_param(params, expected_type=current["type"])
        self._check_external_id(raw, replacing=current["id"])
        expected_hash = _opt_str(params.get("hash"))
        if expected_hash and expected_hash != current.get("hash"):
            raise _ApiError("hash_conflict")
        return {"ok": True, "view": copy.deepcopy(self._replace_view(current, raw))}

    def _views_publish(self, params: JsonDict) -> JsonDict:
        user_id = _opt_str(params.get("user_id"))
        if not user_id or (self.strict and user_id not in self._state.users):
            raise _ApiError("user_not_found")
        raw = self._view_param(params, expected_type="home")
        expected_hash = _opt_str(params.get("hash"))
        home_id = self._state.home.get(user_id)
        if home_id is not None:
            current = self._state.views[home_id]
            if expected_hash and expected_hash != current.get("hash"):
                raise _ApiError("hash_conflict")
            self._check_external_id(raw, replacing=home_id)
            return {"ok": True, "view": copy.deepcopy(self._replace_view(current, raw))}
        self._check_external_id(raw)
        view_id = self._new_id("V")
        view = self._materialize_view(
            raw, view_id=view_id, previous_view_id=None, root_view_id=view_id
        )
        self._state.views[view_id] = view
        self._state.view_owner[view_id] = user_id
        self._state.home[user_id] = view_id
        return {"ok": True, "view": copy.deepcopy(view)}

    # ------------------------------------------------------------------ methods: users

    def _known_user(self, params: JsonDict, key: str = "user") -> User:
        user = self._state.users.get(_opt_str(params.get(key)) or "")
        if user is None:
            raise _ApiError("user_not_found")
        return user

    def _users_info(self, params: JsonDict) -> JsonDict:
        user = self._known_user(params)
        locale = _truthy(params.get("include_locale"))
        return {"ok": True, "user": user.to_slack(include_locale=locale)}

    def _users_list(self, params: JsonDict) -> JsonDict:
        members = [u.to_slack() for u in self._state.users.values()]
        page, cursor = _paginate(members, params)
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}

    def _users_lookup_by_email(self, params: JsonDict) -> JsonDict:
        email = _opt_str(params.get("email"))
        for user in self._state.users.values():
            if email and user.email == email:
                return {"ok": True, "user": user.to_slack()}
        raise _ApiError("users_not_found")

    # ------------------------------------------------------------------ methods: conversations

    def _conversations_info(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        with_count = _truthy(params.get("include_num_members"))
        shown = channel.to_slack(bot_user_id=self.bot_user_id, include_num_members=with_count)
        if not channel.is_im:
            shown["is_member"] = self._caller_is_member(channel)  # the calling token's bot
        return {"ok": True, "channel": shown}

    def _conversations_members(self, params: JsonDict) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        page, cursor = _paginate(channel.member_ids(self.bot_user_id), params)
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}

    def _conversations_open(self, params: JsonDict) -> JsonDict:
        channel_id = _opt_str(params.get("channel"))
        if channel_id:
            channel = self._resolve_channel(channel_id)
        else:
            users = [u for u in (_opt_str(params.get("users")) or "").split(",") if u]
            if len(users) != 1:
                raise _ApiError("not_enough_users" if not users else "invalid_arguments")
            if self.strict and users[0] not in self._state.users:
                raise _ApiError("user_not_found")
            channel = self._dm_channel(users[0])
        return {"ok": True, "channel": {"id": channel.id}}

    def _conversations_history(self, params: JsonDict) -> JsonDict:
        """Top-level messages, newest first, within ``oldest``/``latest`` (exclusive unless
        ``inclusive``); ``metadata`` only with ``include_all_metadata``."""
        channel = self._resolve_channel(params.get("channel"))
        in_window = _ts_window(params)
        top = [
            m
            for m in self._state.messages.get(channel.id, [])
            if not m.is_reply and in_window(m.ts)
        ]
        top.sort(key=lambda m: _ts_key(m.ts), reverse=True)
        return self._message_page(top, params, _HISTORY_LIMITS, newest_first=True)

    def _conversations_replies(self, params: JsonDict) -> JsonDict:
        """A thread, parent first, filtered and paged like ``conversations.history``.

        ``ts`` may name the parent or any reply (both return the whole thread), or a message
        without replies (returned alone).
        """
        channel = self._resolve_channel(params.get("channel"))
        ts = _opt_str(params.get("ts")) or ""
        named = self._find_message(channel.id, ts)
        if named is None:
            raise _ApiError("thread_not_found")
        root = named.thread_ts if named.is_reply and named.thread_ts else named.ts
        in_window = _ts_window(params)
        thread = [
            m
            for m in self._state.messages.get(channel.id, [])
            if (m.ts == root or m.thread_ts == root) and in_window(m.ts)
        ]
        thread.sort(key=lambda m: _ts_key(m.ts))
        return self._message_page(thread, params, _REPLIES_LIMITS, newest_first=False)

    @staticmethod
    def _message_page(
        messages: Sequence[StoredMessage],
        params: Mapping[str, Any],
        limits: tuple[int, int],
        *,
        newest_first: bool,
    ) -> JsonDict:
        page, cursor = _paginate_by_ts(messages, params, limits, newest_first=newest_first)
        with_metadata = _truthy(params.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [m.to_slack(include_metadata=with_metadata) for m in page],
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }


# ---------------------------------------------------------------------- module helpers


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _with_warning(response: JsonDict, warning: str | None) -> JsonDict:
    """Add a Slack warning (``warning`` and ``response_metadata.warnings``) to an answer."""
    if warning is not None:
        response["warning"] = warning
        response.setdefault("response_metadata", {})["warnings"] = [warning]
    return response


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _ts_key(ts: str) -> Decimal:
    return Decimal(ts)


def _ts_param(params: Mapping[str, Any], key: str) -> Decimal | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise _ApiError(f"invalid_ts_{key}") from exc
    if not parsed.is_finite() or parsed < 0:
        raise _ApiError(f"invalid_ts_{key}")
    return parsed


def _ts_window(params: Mapping[str, Any]) -> Callable[[str], bool]:
    """Whether a ts lies within ``oldest``..``latest`` (bounds excluded unless ``inclusive``).

    Slack's ``latest`` defaults to "now"; the emulator leaves it open instead, because its
    ts are kept unique by stepping past the clock when many messages arrive at once.
    """
    oldest = _ts_param(params, "oldest")
    latest = _ts_param(params, "latest")
    inclusive = _truthy(params.get("inclusive"))

    def contains(ts: str) -> bool:
        key = _ts_key(ts)
        if oldest is not None and (key < oldest or (key == oldest and not inclusive)):
            return False
        return latest is None or key < latest or (key == latest and inclusive)

    return contains


def _limit(params: Mapping[str, Any], default: int, maximum: int) -> int:
    try:
        limit = int(params.get("limit") or default)
    except (TypeError, ValueError):
        limit = default
    return max(1, min(limit, maximum))


def _paginate_by_ts(
    messages: Sequence[StoredMessage],
    params: Mapping[str, Any],
    limits: tuple[int, int],
    *,
    newest_first: bool,
) -> tuple[list[StoredMessage], str]:
    """One page of ``messages`` (already in answer order) and the cursor of the next one.

    The cursor names the ts the next page starts at (``next_ts:…``, as Slack's do), so
    messages posted or deleted between two pages neither repeat nor skip entries.
    """
    start = 0
    cursor = _opt_str(params.get("cursor"))
    if cursor:
        try:
            decoded = base64.b64decode(cursor.encode(), validate=True).decode()
            prefix, digits = decoded.split(":", 1)
            if prefix != "next_ts" or not digits.isdigit() or len(digits) <= 6:
                raise ValueError(cursor)
            resume = Decimal(f"{digits[:-6]}.{digits[-6:]}")
        except ValueError as exc:  # bad base64, bad utf-8 (a ValueError too), bad shape
            raise _ApiError("invalid_cursor") from exc
        start = len(messages)
        for index, msg in enumerate(messages):
            key = _ts_key(msg.ts)
            if (key <= resume) if newest_first else (key >= resume):
                start = index
                break
    limit = _limit(params, *limits)
    page = list(messages[start : start + limit])
    if start + limit >= len(messages):
        return page, ""
    following = messages[start + limit].ts.replace(".", "")
    return page, base64.b64encode(f"next_ts:{following}".encode()).decode()


def _paginate(items: Sequence[T], params: Mapping[str, Any]) -> tuple[list[T], str]:
    limit = _limit(params, 100, 1000)
    offset = 0
    cursor = _opt_str(params.get("cursor"))
    if cursor:
        try:
            offset = int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)[1])
        except (ValueError, IndexError) as exc:
            raise _ApiError("invalid_cursor") from exc
    page = list(items[offset : offset + limit])
    more = offset + limit < len(items)
    next_cursor = base64.urlsafe_b64encode(f"offset:{offset + limit}".encode()).decode()
    return page, next_cursor if more else ""
