"""How a listener acts for a person: the change is committed before Slack gets its ack.

    outcome = perform(ack, body, deps, lambda session: services.accept_request(...),
                      reply_to=reply_address(body))

`perform` runs one service with the request's `Origin` attached (domain.intake): the
request's idempotency key is stored with the change, and the person's answer is an
outbox intent of the same transaction. Only then is the request acked, and the outbox
is delivered after the ack, in the same thread. So an ack always means the change is
in the database, and the answer the person gets always says what happened:

- a refusal (`DomainError`) changes nothing; the one error policy (handlers.errors)
  acks and explains it;
- a repeat of a request already applied (a replay, a redelivery) is acked silently;
- a commit whose outcome is unknown (the connection died at COMMIT) is resolved by
  asking the database again on a fresh connection before answering; if it still can't
  be known within Slack's three seconds, the person is told so and told again as soon
  as it is known;
- if the process dies after the commit, the answer and the cards are in the outbox,
  and the next sweep of any process sends them.

Slack gives a listener three seconds to ack: the transaction must be over well before
(`SERVICE_SECONDS`; the database gives up on locks and statements that would outlast
it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack
from slack_bolt.request.internals import extract_enterprise_id, extract_team_id
from sqlalchemy.orm import Session

from domain import intake
from domain.errors import DomainError
from domain.services import Outcome
from handlers.deps import Deps

log = logging.getLogger(__name__)

SERVICE_SECONDS = 2.0  # from the listener's start to the end of its transaction
ANSWER_SECONDS = 2.6  # by then the ack must be on its way (Slack waits 3 s)
RESOLVE_SECONDS = 120.0  # how long an unknown outcome is looked into after the ack

Service = Callable[[Session], Outcome]
TOO_LATE = (
    "Slack was slow to answer me just now, so I stopped there. Nothing changed; please try again."
)


class TooLate(DomainError):
    """So much of Slack's three seconds went by before the change could start that its
    ack might not arrive in time: nothing is changed."""


def request_key(body: dict[str, Any]) -> str | None:
    """The idempotency key of a Slack request: the same for a replay of it, different
    for every other request (a command's or form's trigger_id, a click's action_ts)."""
    kind = body.get("type")
    if body.get("command"):
        trigger = body.get("trigger_id")
        return f"command:{trigger}" if trigger else None
    if kind == "block_actions" and body.get("actions"):
        action_ts = body["actions"][0].get("action_ts")
        user = (body.get("user") or {}).get("id", "")
        return f"action:{user}:{action_ts}" if action_ts else None
    if kind == "view_submission" and body.get("trigger_id"):
        return f"view:{body['trigger_id']}"
    return None


def perform(
    ack: Ack,
    body: dict[str, Any],
    deps: Deps,
    service: Service,
    *,
    reply_to: str | None,
    tell: Callable[[str], None] | None = None,
    started: float | None = None,
) -> Outcome | None:
    """Run `service` for the person behind `body`, commit, ack, deliver; the outcome, or
    None when there is nothing more to say (a repeat, or an outcome not yet known).

    `tell(text)` reaches the person directly (used when the outcome can't be known in
    time; a refusal is told by the error policy). `started`: when the listener began
    (time.monotonic()), if it did other work (a Slack lookup) before this."""
    started = time.monotonic() if started is None else started
    if time.monotonic() - started > SERVICE_SECONDS:
        raise TooLate(TOO_LATE)
    key = request_key(body)
    origin = (
        intake.Origin(
            key=key,
            at=deps.now(),
            reply_to=reply_to,
            deadline=started + SERVICE_SECONDS,
            team_id=extract_team_id(body),
            enterprise_id=extract_enterprise_id(body),
        )
        if key is not None
        else None
    )
    try:
        with deps.sessions() as session:
            if origin is not None:
                intake.attach(session, origin)
            outcome = service(session)
    except intake.AlreadyHandled:
        log.info("ignored a repeated request: %s", key)
        ack()
        return None
    except intake.OutcomeUnknown as unknown:
        _resolve(ack, deps, unknown, until=started + ANSWER_SECONDS, tell=tell)
        return None
    ack()
    deps.delivery.deliver(outcome.outbox_ids)
    return outcome


NOT_APPLIED = (
    "That didn't go through: my database stopped answering. Nothing changed; please try again."
)
STILL_UNKNOWN = (
    "I still can't reach my database, so I can't tell whether that went through. If it "
    "did, the channel will show it as soon as I'm back; if it doesn't, please try again."
)
UNKNOWN = (
    "My database stopped answering just as I saved that, so I can't tell yet whether it "
    "went through. I'll tell you here as soon as I know."
)


def _resolve(
    ack: Ack,
    deps: Deps,
    unknown: intake.OutcomeUnknown,
    *,
    until: float,
    tell: Callable[[str], None] | None,
) -> None:
    """The commit did not answer: find out from the request's receipt what happened."""
    applied = intake.was_applied(deps.sessions, unknown.key, until=until)
    if applied is False:
        raise unknown.__cause__ or unknown  # not applied: the error policy says "try again"
    ack()
    if applied:
        log.warning("request %s was committed although the commit did not answer", unknown.key)
        deps.delivery.sweep()  # its answer and cards are in the outbox
        return
    if tell is not None:
        tell(UNKNOWN)

    def keep_asking() -> None:
        found = intake.was_applied(
            deps.sessions, unknown.key, until=time.monotonic() + RESOLVE_SECONDS
        )
        if found:
            deps.delivery.sweep()
        elif tell is not None:
            tell(NOT_APPLIED if found is False else STILL_UNKNOWN)

    threading.Thread(target=keep_asking, name="resolve", daemon=True).start()
