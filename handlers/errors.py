"""The one error policy: a refusal is explained to the person who tried; anything else
is logged with a correlation id and the person gets a short apology with that id.

Listeners are registered through `guarded`, which applies this policy to what a
listener raises. It is needed because slack-bolt 1.30 (listener/thread_runner.py)
replaces an ack already given with "no ack" when the listener raises right after
acking, which Slack would see as a 404 "unhandled request" three seconds later. The
app's `@app.error` handler applies the same policy to everything else.

A database that does not answer changes nothing (the transaction is rolled back; a
commit whose fate is unknown is resolved first, handlers.flow), so the person is told
to try again.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import Respond
from slack_bolt.kwargs_injection.args import Args
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import DBAPIError

from domain.errors import DomainError
from domain.text import Said
from handlers import blocks
from handlers.blocks.fields import form_errors
from handlers.blocks.message import Message

log = logging.getLogger(__name__)


def guarded(listener: Callable[..., None]) -> Callable[[Args], None]:
    """Wrap a listener so its errors follow the policy (bolt injects `args`)."""
    wanted = list(inspect.signature(listener).parameters)

    def guarded_listener(args: Args) -> None:
        try:
            listener(**{name: getattr(args, name) for name in wanted})
        except Exception as error:  # noqa: BLE001 - this *is* the one error policy
            if args.ack.response is None:  # not acked yet
                if args.body.get("type") == "view_submission":
                    # A form has no channel to answer in: the answer goes into the form,
                    # which stays open with what the person typed.
                    refusal = (
                        error if isinstance(error, DomainError) else DomainError(explain(error))
                    )
                    view = args.body.get("view") or {}
                    present = set((view.get("state") or {}).get("values") or {})
                    errors = form_errors(
                        str(view.get("callback_id", "")),
                        refusal,
                        present=present,
                        name_of=names_via(args.client),
                    )
                    args.ack(response_action="errors", errors=errors)
                    return
                args.ack()  # an answer in time, so Slack shows ours instead of a timeout
            report(error, args.body, args.client, args.respond)

    guarded_listener.__name__ = listener.__name__
    guarded_listener.__qualname__ = listener.__qualname__
    return guarded_listener


def names_via(client: WebClient) -> Callable[[str], str]:
    """People's names for plain-text surfaces (a form's error can't show a mention)."""

    def name_of(user_id: str) -> str:
        try:
            user = client.users_info(user=user_id)["user"]
        except (SlackApiError, KeyError, TypeError):
            return user_id
        profile = user.get("profile") or {}
        return str(
            profile.get("display_name") or user.get("real_name") or user.get("name") or user_id
        )

    return name_of


def report(error: Exception, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
    tell(client, respond, body, explain(error))


def explain(error: Exception) -> Said | str:
    """What the person is told about `error` (an unexpected one is logged here)."""
    if isinstance(error, DomainError):
        return error.said
    if isinstance(error, DBAPIError):
        log.error("the database did not answer: %s", str(error).splitlines()[0])
        return (
            "I can't reach my database right now, so nothing changed. Please try again in a minute."
        )
    correlation = uuid.uuid4().hex[:8]
    log.error("unexpected error %s", correlation, exc_info=error)
    return (
        f"Sorry, something went wrong on my side (error id `{correlation}`). "
        "Nothing changed; please try again."
    )


def tell(
    client: WebClient, respond: Respond, body: dict[str, Any], message: Said | str | Message
) -> None:
    """Show `message` (words, or a message built with its blocks) to the person behind
    `body` only."""
    user_id = (body.get("user") or {}).get("id") or body.get("user_id")
    notice = message if isinstance(message, Message) else blocks.build_notice(message)
    try:
        if body.get("response_url") or body.get("response_urls"):
            respond(**notice.as_kwargs(), response_type="ephemeral", replace_original=False)
        elif body.get("trigger_id") and body.get("type") == "block_actions":
            # A click in App Home or a modal: no channel to answer in, so show a notice.
            client.views_open(
                trigger_id=body["trigger_id"], view=blocks.build_notice_modal(message).to_dict()
            )
        elif user_id and body.get("channel_id"):
            client.chat_postEphemeral(
                channel=body["channel_id"], user=user_id, **notice.as_kwargs()
            )
        else:
            log.warning("could not tell %s: %s", user_id, notice.text)
    except SlackApiError:
        log.exception("could not tell %s: %s", user_id, notice.text)
