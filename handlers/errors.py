"""The one error policy: a refusal is explained to the person who tried; anything else
is logged with a correlation id and the person gets a short apology with that id.

Listeners are registered through `guarded`, which applies this policy to what a
listener raises. It is needed because slack-bolt 1.30 (listener/thread_runner.py)
replaces an ack already given with "no ack" when the listener raises right after
acking, which Slack would see as a 404 "unhandled request" three seconds later. The
app's `@app.error` handler applies the same policy to everything else.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack
from slack_bolt.kwargs_injection.args import Args
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from domain.errors import DomainError
from handlers.blocks import cards
from handlers.blocks.fields import form_errors

log = logging.getLogger(__name__)


def acked_then(listener: Callable[..., None]) -> dict[str, Any]:
    """Register `listener` as bolt's lazy part of a listener that only acks.

        app.action(Action.ACCEPT.value)(**acked_then(press_button))

    The ack goes back at once; the work runs after it, in a thread or in `serve`'s
    work process (bot/work.py), under the one error policy.
    """
    return {"ack": ack_at_once, "lazy": [guarded(listener)]}


def ack_at_once(ack: Ack) -> None:
    ack()


def guarded(listener: Callable[..., None]) -> Callable[[Args], None]:
    """Wrap a listener so its errors follow the policy (bolt injects `args`)."""
    wanted = list(inspect.signature(listener).parameters)

    def guarded_listener(args: Args) -> None:
        try:
            listener(**{name: getattr(args, name) for name in wanted})
        except Exception as error:  # noqa: BLE001 - this *is* the one error policy
            # Not acked yet. (A lazy listener's ack is a fresh one that goes nowhere: the
            # real ack went out before it ran, so this branch changes nothing there.)
            if args.ack.response is None:
                if isinstance(error, DomainError) and args.body.get("type") == "view_submission":
                    # A form has no channel to answer in: the refusal goes into the form.
                    view = args.body.get("view") or {}
                    present = set((view.get("state") or {}).get("values") or {})
                    errors = form_errors(str(view.get("callback_id", "")), error, present=present)
                    args.ack(response_action="errors", errors=errors)
                    return
                args.ack()  # an answer in time, so Slack shows ours instead of a timeout
            report(error, args.body, args.client, args.respond)

    guarded_listener.__name__ = listener.__name__
    guarded_listener.__qualname__ = listener.__qualname__
    return guarded_listener


def report(error: Exception, body: dict[str, Any], client: WebClient, respond: Any) -> None:
    if isinstance(error, DomainError):
        message = error.message
    else:
        correlation = uuid.uuid4().hex[:8]
        log.error("unexpected error %s", correlation, exc_info=error)
        message = (
            f"Sorry, something went wrong on my side (error id `{correlation}`). "
            "Nothing changed; please try again."
        )
    tell(client, respond, body, message)


def tell(client: WebClient, respond: Any, body: dict[str, Any], message: str) -> None:
    """Show `message` to the person behind `body` only."""
    user_id = (body.get("user") or {}).get("id") or body.get("user_id")
    notice = cards.build_notice(message)
    try:
        if body.get("response_url") or body.get("response_urls"):
            respond(**notice.as_kwargs(), response_type="ephemeral", replace_original=False)
        elif body.get("trigger_id") and body.get("type") == "block_actions":
            # A click in App Home or a modal: no channel to answer in, so show a notice.
            client.views_open(
                trigger_id=body["trigger_id"], view=cards.build_notice_modal(message).to_dict()
            )
        elif user_id and body.get("channel_id"):
            client.chat_postEphemeral(
                channel=body["channel_id"], user=user_id, **notice.as_kwargs()
            )
        else:
            log.warning("could not tell %s: %s", user_id, message)
    except SlackApiError:
        log.exception("could not tell %s: %s", user_id, message)
