"""``SlackDriver``: sends what Slack would send to the app (signed HTTP requests)."""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from . import blocks as blockkit
from .models import ButtonRef, JsonDict
from .server import SlackEmulator

_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class SentRequest:
    """Exactly what went on the wire (for replay and attack tests)."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Response:
    """The app's HTTP answer (header names lower-cased). `status` 0: no answer at all
    (the connection was refused or dropped, or it timed out), which Slack shows the
    person as a failure; `body` then says why."""

    status: int
    body: bytes
    headers: dict[str, str]
    request: SentRequest
    trigger_id: str | None = None
    response_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body)."""
        return json.loads(self.body) if self.body.strip() else None


class SlackDriver:
    """Plays the Slack platform toward the app: commands, clicks, submissions, events.

    ``app_url`` is the app's base URL; requests go to ``app_url + path`` (``/slack/events``).
    Trigger ids and response_urls are issued by ``emulator`` so that the app's follow-up
    calls (``views.open``, ``respond()``) land there.
    """

    def __init__(
        self,
        emulator: SlackEmulator,
        app_url: str,
        signing_secret: str,
        *,
        path: str = "/slack/events",
        clock: Callable[[], float] = time.time,
        verification_token: str = "emulator-verification-token",
        timeout: float = 10.0,
    ) -> None:
        self.emulator = emulator
        self.endpoint = app_url.rstrip("/") + path
        self.signing_secret = signing_secret
        self.clock = clock
        self.verification_token = verification_token
        self.timeout = timeout
        self.last_request: SentRequest | None = None
        self._verifier = SignatureVerifier(signing_secret)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ------------------------------------------------------------------ transport

    def sign(self, body: bytes, *, timestamp: int | str | None = None) -> dict[str, str]:
        """``X-Slack-Request-Timestamp`` / ``X-Slack-Signature`` headers for ``body``."""
        ts = str(int(self.clock())) if timestamp is None else str(timestamp)
        signature = self._verifier.generate_signature(timestamp=ts, body=body)
        if signature is None:  # only when the secret is empty
            raise ValueError("cannot sign without a signing secret")
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}

    def raw(self, body: bytes, headers: Mapping[str, str], *, url: str | None = None) -> Response:
        """POST ``body`` with exactly ``headers`` (no signing) and return the answer."""
        request = SentRequest(url=url or self.endpoint, body=body, headers=dict(headers))
        return self._send(request)

    def replay(self, request: SentRequest | None = None) -> Response:
        """Send a previously sent request again, byte for byte (default: the last one)."""
        request = request or self.last_request
        if request is None:
            raise LookupError("nothing sent yet")
        return self._send(request)

    def send_signed(
        self,
        body: bytes,
        content_type: str,
        *,
        headers: Mapping[str, str] | None = None,
        timestamp: int | str | None = None,
    ) -> Response:
        """POST a correctly signed ``body``."""
        all_headers = {
            "Content-Type": content_type,
            "User-Agent": _USER_AGENT,
            **self.sign(body, timestamp=timestamp),
            **(headers or {}),
        }
        return self.raw(body, all_headers)

    def send_form(self, fields: Mapping[str, str], **kwargs: Any) -> Response:
        return self.send_signed(urlencode(dict(fields)).encode("utf-8"), FORM, **kwargs)

    def send_payload(self, payload: Mapping[str, Any], **kwargs: Any) -> Response:
        """An interactivity request: form field ``payload`` holding JSON."""
        return self.send_form({"payload": json.dumps(payload, separators=(",", ":"))}, **kwargs)

    def send_json(self, payload: Mapping[str, Any], **kwargs: Any) -> Response:
        return self.send_signed(json.dumps(payload).encode("utf-8"), JSON, **kwargs)

    def _send(self, request: SentRequest) -> Response:
        self.last_request = request
        http_request = urllib.request.Request(
            request.url, data=request.body, headers=request.headers, method="POST"
        )
        try:
            with self._opener.open(http_request, timeout=self.timeout) as reply:
                status = int(reply.status)
                body = reply.read()
                headers = {k.lower(): v for k, v in reply.headers.items()}
        except urllib.error.HTTPError as exc:
            status = exc.code
            body = exc.read()
            headers = {k.lower(): v for k, v in exc.headers.items()}
        except (OSError, http.client.HTTPException) as exc:  # refused, dropped, timed out
            status, body, headers = 0, repr(exc).encode(), {}
        return Response(status=status, body=body, headers=headers, request=request)

    # ------------------------------------------------------------------ payload parts

    def _team(self, team_id: str | None) -> JsonDict:
        return {"id": team_id or self.emulator.team_id, "domain": self.emulator.team_domain}

    def _user_name(self, user_id: str) -> str:
        user = self.emulator.user(user_id)
        return user.name if user is not None else user_id.lower()

    def _user(self, user_id: str, team_id: str | None = None) -> JsonDict:
        name = self._user_name(user_id)
        return {
            "id": user_id,
            "username": name,
            "name": name,
            "team_id": team_id or self.emulator.team_id,
        }

    def _channel_name(self, channel_id: str) -> str:
        channel = self.emulator.channel(channel_id)
        if channel is None:
            return "directmessage" if channel_id.startswith("D") else channel_id.lower()
        return channel.name

    def _action_ts(self) -> str:
        now = self.clock()
        return f"{int(now)}.{int((now % 1) * 1_000_000):06d}"

    def _interaction_base(self, kind: str, user_id: str, team_id: str | None) -> JsonDict:
        return {
            "type": kind,
            "user": self._user(user_id, team_id),
            "api_app_id": self.emulator.app_id,
            "token": self.verification_token,
            "team": self._team(team_id),
            "enterprise": None,
            "is_enterprise_install": False,
        }

    @staticmethod
    def _action(element: Mapping[str, Any], block_id: str, value: Any, action_ts: str) -> JsonDict:
        etype = str(element.get("type", "button"))
        action: JsonDict = {"type": etype, "action_id": element["action_id"], "block_id": block_id}
        if etype == "button":
            action["text"] = element.get("text")
            chosen = element.get("value") if value is None else value
            if chosen is not None:
                action["value"] = chosen
            if "style" in element:
                action["style"] = element["style"]
        else:
            action.update(blockkit.element_value(element, value))
            if "placeholder" in element:
                action["placeholder"] = element["placeholder"]
        action["action_ts"] = action_ts
        return action

    # ------------------------------------------------------------------ slash commands

    def command(
        self,
        user_id: str,
        text: str = "",
        *,
        channel_id: str,
        command: str = "/milestone",
        team_id: str | None = None,
        show_reply: bool = True,
        enterprise_id: str | None = None,
        is_enterprise_install: bool = False,
    ) -> Response:
        """A slash command. A non-empty ack (text/JSON) is shown like Slack does when
        ``show_reply`` (as an ephemeral, or in the channel for ``response_type: in_channel``).
        ``enterprise_id``: the Enterprise Grid org of ``team_id``; ``is_enterprise_install``:
        the app is installed org-wide there (Slack sends both fields in a Grid).
        """
        trigger_id = self.emulator.issue_trigger_id(user_id)
        response_url = self.emulator.new_response_url(channel=channel_id, user_id=user_id)
        fields = {
            "token": self.verification_token,
            "team_id": team_id or self.emulator.team_id,
            "team_domain": self.emulator.team_domain,
            "channel_id": channel_id,
            "channel_name": self._channel_name(channel_id),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.emulator.app_id,
            "is_enterprise_install": "true" if is_enterprise_install else "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        if enterprise_id is not None:
            fields["enterprise_id"] = enterprise_id
        response = self.send_form(fields)
        if show_reply and response.status == 200 and response.body.strip():
            if "json" in response.content_type:
                reply = response.json()
                if isinstance(reply, dict) and ("text" in reply or "blocks" in reply):
                    self.emulator.apply_ack_reply(response_url, reply)
            else:
                self.emulator.apply_ack_reply(response_url, {"text": response.text})
        return _with(response, trigger_id=trigger_id, response_url=response_url)

    # ------------------------------------------------------------------ block_actions

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
        """A button of a stored message: ``(action_id, value, block_id)``."""
        return self.emulator.find_button(
            channel,
            ts,
            label_startswith=label_startswith,
            action_id=action_id,
            value=value,
            user=user,
        )

    def click_button(
        self, user_id: str, channel_id: str, ts: str, label_startswith: str
    ) -> Response:
        """Click the first button of message ``ts`` whose label starts with the given text."""
        ref = self.find_button(channel_id, ts, label_startswith=label_startswith, user=user_id)
        return self.click(
            user_id,
            channel_id=channel_id,
            message_ts=ts,
            action_id=ref.action_id,
            value=ref.value,
            block_id=ref.block_id,
        )

    def click(
        self,
        user_id: str,
        *,
        channel_id: str,
        message_ts: str,
        action_id: str,
        value: Any = None,
        block_id: str | None = None,
        team_id: str | None = None,
    ) -> Response:
        """Interact with an element of a stored (or ephemeral) message.

        ``value`` overrides a button's value, or is the selection for selects/pickers
        (an option value, a user id, a date …).
        """
        message = self.emulator.message(channel_id, message_ts)
        ephemeral = None
        if message is None:
            matches = [
                e for e in self.emulator.ephemerals(channel_id, user_id) if e.ts == message_ts
            ]
            ephemeral = matches[0] if matches else None
            if ephemeral is None:
                raise LookupError(f"no message {message_ts} in {channel_id} for {user_id}")
        blocks = message.blocks if message is not None else ephemeral.blocks if ephemeral else []
        found = blockkit.find_element(blocks, action_id, block_id)
        if found is None:
            present = [e["action_id"] for _, e, _ in blockkit.iter_elements(blocks)]
            raise LookupError(f"no element {action_id!r} in message {message_ts}: {present}")
        found_block_id, element = found
        trigger_id = self.emulator.issue_trigger_id(user_id)
        response_url = self.emulator.new_response_url(
            channel=channel_id,
            user_id=user_id,
            message_ts=message_ts,
            ephemeral=message is None,
        )
        payload = self._interaction_base("block_actions", user_id, team_id)
        payload["container"] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": message is None,
        }
        payload["trigger_id"] = trigger_id
        payload["channel"] = {"id": channel_id, "name": self._channel_name(channel_id)}
        if message is not None:
            payload["message"] = message.to_slack()
        payload["state"] = {"values": {}}
        payload["response_url"] = response_url
        payload["actions"] = [self._action(element, found_block_id, value, self._action_ts())]
        response = self.send_payload(payload)
        return _with(response, trigger_id=trigger_id, response_url=response_url)

    def click_in_view(
        self,
        user_id: str,
        view_id: str,
        action_id: str,
        *,
        value: Any = None,
        block_id: str | None = None,
        values: Mapping[str, Mapping[str, Any]] | None = None,
        inputs: Mapping[str, Any] | None = None,
        team_id: str | None = None,
    ) -> Response:
        """Interact with an element of a modal or Home view (``container.type == "view"``).

        ``values``/``inputs`` describe what the user has typed so far (see ``submit_view``).
        """
        view = self.emulator.view(view_id)
        if view is None:
            raise LookupError(f"unknown view {view_id}")
        found = blockkit.find_element(view.get("blocks") or [], action_id, block_id)
        if found is None:
            present = [e["action_id"] for _, e, _ in blockkit.iter_elements(view["blocks"])]
            raise LookupError(f"no element {action_id!r} in view {view_id}: {present}")
        found_block_id, element = found
        if values is not None or inputs is not None:
            state = blockkit.build_state_values(view["blocks"], values, inputs)
            self.emulator.set_view_state(view_id, state)
            view["state"] = {"values": state}
        trigger_id = self.emulator.issue_trigger_id(user_id)
        payload = self._interaction_base("block_actions", user_id, team_id)
        payload["container"] = {"type": "view", "view_id": view_id}
        payload["trigger_id"] = trigger_id
        payload["view"] = view
        payload["actions"] = [self._action(element, found_block_id, value, self._action_ts())]
        response = self.send_payload(payload)
        return _with(response, trigger_id=trigger_id)

    def click_home(
        self,
        user_id: str,
        action_id: str,
        value: Any = None,
        *,
        block_id: str | None = None,
    ) -> Response:
        """Interact with the user's published Home tab."""
        home = self.emulator.home_view(user_id)
        if home is None:
            raise LookupError(f"no Home view published for {user_id}")
        return self.click_in_view(user_id, home["id"], action_id, value=value, block_id=block_id)

    # ------------------------------------------------------------------ views

    def _top_view(self, user_id: str, view_id: str | None) -> JsonDict:
        stack = self.emulator.open_views(user_id)
        if not stack:
            raise LookupError(f"{user_id} has no open modal")
        top = stack[-1]
        if view_id is not None and top["id"] != view_id:
            open_ids = [v["id"] for v in stack]
            raise LookupError(f"view {view_id} is not the top modal of {user_id}: {open_ids}")
        return top

    def submit_view(
        self,
        user_id: str,
        view_id: str | None = None,
        values: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        inputs: Mapping[str, Any] | None = None,
        team_id: str | None = None,
    ) -> Response:
        """Press the submit button of ``view_id`` (default: the user's top modal).

        ``values``: ``{block_id: {action_id: value}}`` where value is a plain value (converted by
        element type: plain_text_input -> ``value``, datepicker -> ``selected_date``,
        users_select -> ``selected_user``, static_select -> ``selected_option`` …) or a
        ready-made state object with a ``type`` key. ``inputs``: ``{action_id or block_id:
        plain value}``. Untouched inputs are sent with their initial value or null.
        The emulator's modal stack then follows the app's answer (close/errors/update/…).
        """
        view = self._top_view(user_id, view_id)
        state = blockkit.build_state_values(view.get("blocks") or [], values, inputs)
        self.emulator.set_view_state(view["id"], state)
        view["state"] = {"values": state}
        trigger_id = self.emulator.issue_trigger_id(user_id)
        payload = self._interaction_base("view_submission", user_id, team_id)
        payload["trigger_id"] = trigger_id
        payload["view"] = view
        payload["response_urls"] = []
        response = self.send_payload(payload)
        self.emulator.apply_view_submission_response(
            user_id, view["id"], response.status, response.body, response.content_type
        )
        return _with(response, trigger_id=trigger_id)

    def close_view(
        self, user_id: str, view_id: str | None = None, *, team_id: str | None = None
    ) -> Response | None:
        """Press the close button (X / Cancel) of ``view_id`` (default: top modal).

        Sends ``view_closed`` only when the view asked for ``notify_on_close`` (else ``None``).
        """
        view = self._top_view(user_id, view_id)
        cleared = bool(view.get("clear_on_close"))
        response = None
        if view.get("notify_on_close"):
            payload = self._interaction_base("view_closed", user_id, team_id)
            payload["view"] = view
            payload["is_cleared"] = cleared
            response = self.send_payload(payload)
        self.emulator.close_view(user_id, view["id"], clear=cleared)
        return response

    # ------------------------------------------------------------------ other interactivity

    def shortcut(self, user_id: str, callback_id: str, *, team_id: str | None = None) -> Response:
        """A global shortcut."""
        trigger_id = self.emulator.issue_trigger_id(user_id)
        payload = self._interaction_base("shortcut", user_id, team_id)
        payload["callback_id"] = callback_id
        payload["trigger_id"] = trigger_id
        payload["action_ts"] = self._action_ts()
        return _with(self.send_payload(payload), trigger_id=trigger_id)

    def suggest(
        self,
        user_id: str,
        action_id: str,
        value: str,
        *,
        view_id: str | None = None,
        block_id: str | None = None,
        team_id: str | None = None,
    ) -> Response:
        """A ``block_suggestion`` (external select typeahead) request."""
        payload = self._interaction_base("block_suggestion", user_id, team_id)
        payload["action_id"] = action_id
        payload["block_id"] = block_id or ""
        payload["value"] = value
        if view_id is not None:
            view = self.emulator.view(view_id)
            if view is None:
                raise LookupError(f"unknown view {view_id}")
            payload["container"] = {"type": "view", "view_id": view_id}
            payload["view"] = view
        return self.send_payload(payload)

    # ------------------------------------------------------------------ Events API

    def event(
        self,
        event: Mapping[str, Any],
        *,
        team_id: str | None = None,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> Response:
        """Deliver ``event`` in an ``event_callback`` envelope (signed JSON)."""
        team = team_id or self.emulator.team_id
        now = self.clock()
        inner = {"event_ts": self._action_ts(), **dict(event)}
        envelope = {
            "token": self.verification_token,
            "team_id": team,
            "api_app_id": self.emulator.app_id,
            "event": inner,
            "type": "event_callback",
            "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team,
                    "user_id": self.emulator.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_urlsafe(24)}",
        }
        headers: dict[str, str] = {}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return self.send_json(envelope, headers=headers)

    def app_home_opened(self, user_id: str, *, tab: str = "home") -> Response:
        """The user opened the app's Home (or Messages) tab."""
        event: JsonDict = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": self.emulator.dm_channel_id(user_id),
            "tab": tab,
        }
        home = self.emulator.home_view(user_id)
        if home is not None:
            event["view"] = home
        return self.event(event)

    def post_message(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        *,
        thread_ts: str | None = None,
    ) -> Response:
        """The user writes ``text`` in a channel/DM: stored, then sent as a ``message`` event."""
        msg = self.emulator.post_user_message(channel_id, user_id, text, thread_ts=thread_ts)
        channel = self.emulator.channel(msg.channel)
        if channel is not None and channel.is_im:
            channel_type = "im"
        elif channel is not None and channel.is_private:
            channel_type = "group"
        else:
            channel_type = "channel"
        event: JsonDict = {
            "type": "message",
            "user": user_id,
            "text": text,
            "ts": msg.ts,
            "channel": msg.channel,
            "channel_type": channel_type,
            "event_ts": msg.ts,
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return _with(self.event(event), extra={"ts": msg.ts, "channel": msg.channel})

    def url_verification(self, challenge: str) -> Response:
        """The signed handshake Slack sends when the request URL is configured."""
        return self.send_json(
            {"token": self.verification_token, "challenge": challenge, "type": "url_verification"}
        )


def _with(
    response: Response,
    *,
    trigger_id: str | None = None,
    response_url: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    return replace(
        response, trigger_id=trigger_id, response_url=response_url, extra=dict(extra or {})
    )
