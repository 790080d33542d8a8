"""A closed-loop load generator that plays Slack: signed requests over real HTTP.

Each of `concurrency` workers takes the next interaction, signs it (Slack's v0 HMAC,
current timestamp), starts the clock, POSTs it on a new loopback connection and
stops the *ack* clock when the HTTP response has been read. It then waits until the
emulator reports the interaction's effects — the reply on its response_url, the
update of the card it clicked — and only then takes the next one, so `concurrency`
is the number of interactions in flight, background work included.
"""

from __future__ import annotations

import http.client
import itertools
import json
import secrets
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from slack_sdk.signature import SignatureVerifier

from tests.benchmarks.slack_process import REPLY, UPDATE, SlackProcess

FORM = "application/x-www-form-urlencoded"
COMPLETION_TIMEOUT = 20.0
_ids = itertools.count(1)


@dataclass(frozen=True)
class Interaction:
    """One request as Slack sends it, and the effects that complete it."""

    kind: str  # "status" | "accept"
    fields: dict[str, str]  # the form body, before signing
    reply_url: str | None  # the response_url whose POST is the reply
    card_key: str | None = None  # "channel:ts" of the card whose chat.update completes it
    expect: str = ""  # text the reply must contain
    # The bare app: how long the interaction stays in flight after its ack (the real
    # app's time from ack to its last effect for the same request), so both see the
    # same load.
    hold: float = 0.0


@dataclass
class Sample:
    kind: str
    status: int
    ack: float  # seconds from the start of the request to the end of its HTTP response
    completion: float | None = None  # to the card update (accept) or the reply (status)
    reply: float | None = None  # to the reply on the response_url
    ok: bool = True
    problem: str = ""


def command(
    *, user: str, channel: str, text: str, response_url: str, team: str = "T0001"
) -> dict[str, str]:
    """A `/milestone` slash command's form fields (as `SlackDriver.command` sends them)."""
    return {
        "token": "emulator-verification-token",
        "team_id": team,
        "team_domain": "sandbox",
        "channel_id": channel,
        "channel_name": channel.lower(),
        "user_id": user,
        "user_name": user.lower(),
        "command": "/milestone",
        "text": text,
        "api_app_id": "A0001",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{int(time.time())}.{next(_ids)}.{secrets.token_hex(8)}",
    }


def button_click(
    *,
    user: str,
    channel: str,
    message: dict[str, Any],
    action_id: str,
    value: str,
    block_id: str,
    response_url: str,
    team: str = "T0001",
) -> dict[str, str]:
    """A block_actions payload for a button on a channel message (as `SlackDriver.click`)."""
    now = time.time()
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "A0001",
        "token": "emulator-verification-token",
        "team": {"id": team, "domain": "sandbox"},
        "enterprise": None,
        "is_enterprise_install": False,
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{int(now)}.{next(_ids)}.{secrets.token_hex(8)}",
        "channel": {"id": channel, "name": channel.lower()},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": "Accept"},
                "value": value,
                "style": "primary",
                # Unique per click: the app ignores an exact replay of (user, action_ts).
                "action_ts": f"{int(now)}.{next(_ids) % 1_000_000:06d}",
            }
        ],
    }
    return {"payload": json.dumps(payload, separators=(",", ":"))}


def post(url: str, fields: dict[str, str], signer: SignatureVerifier) -> tuple[int, bytes, float]:
    """Sign and POST; (status, body, seconds until the response was read)."""
    body = urlencode(fields).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signer.generate_signature(timestamp=stamp, body=body) or "",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    parts = urlsplit(url)
    began = time.monotonic()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("POST", parts.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        elapsed = time.monotonic() - began
    finally:
        connection.close()
    return response.status, data, elapsed


def run(
    url: str,
    interactions: Sequence[Interaction],
    *,
    concurrency: int,
    slack: SlackProcess | None,
    secret: str,
) -> list[Sample]:
    """Send every interaction with `concurrency` workers; one sample each."""
    signer = SignatureVerifier(secret)
    queue = list(reversed(interactions))
    taking = threading.Lock()
    samples: list[Sample] = []

    def next_one() -> Interaction | None:
        with taking:
            return queue.pop() if queue else None

    def work() -> None:
        while (interaction := next_one()) is not None:
            samples.append(_one(url, interaction, signer, slack))

    workers = [threading.Thread(target=work, daemon=True) for _ in range(concurrency)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    return samples


def _one(
    url: str, interaction: Interaction, signer: SignatureVerifier, slack: SlackProcess | None
) -> Sample:
    began = time.monotonic()
    try:
        status, body, ack = post(url, interaction.fields, signer)
    except OSError as error:
        return Sample(interaction.kind, 0, time.monotonic() - began, ok=False, problem=repr(error))
    sample = Sample(interaction.kind, status, ack)
    if status != 200:
        sample.ok, sample.problem = False, f"HTTP {status}: {body[:200]!r}"
        return sample
    if slack is None:  # the bare app: an ack is all there is
        time.sleep(interaction.hold)
        return sample
    if interaction.card_key is not None:
        updated = slack.wait(UPDATE, interaction.card_key, COMPLETION_TIMEOUT)
        if updated is None:
            sample.ok, sample.problem = False, "the card was never updated"
        else:
            sample.completion = updated.at - began
    if interaction.reply_url is not None:
        reply = slack.wait(REPLY, interaction.reply_url, COMPLETION_TIMEOUT)
        if reply is None:
            sample.ok, sample.problem = False, "no reply"
        else:
            sample.reply = reply.at - began
            if interaction.card_key is None:
                sample.completion = sample.reply
            if interaction.expect not in reply.text:
                sample.ok, sample.problem = False, f"unexpected reply: {reply.text[:120]}"
    return sample


@dataclass
class Summary:
    count: int
    errors: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "errors": self.errors,
            "p50_ms": _ms(self.p50),
            "p95_ms": _ms(self.p95),
            "p99_ms": _ms(self.p99),
            "mean_ms": _ms(self.mean),
            "problems": self.problems[:5],
        }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 2) if seconds is not None else None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (the value at or below which p% of the samples fall)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def summarize(samples: Sequence[Sample], measure: str) -> Summary:
    values = [getattr(s, measure) for s in samples if s.ok and getattr(s, measure) is not None]
    errors = sum(1 for s in samples if not s.ok)
    problems = sorted({s.problem for s in samples if not s.ok})
    if not values:
        return Summary(len(samples), errors, None, None, None, None, problems)
    return Summary(
        len(samples),
        errors,
        percentile(values, 50),
        percentile(values, 95),
        percentile(values, 99),
        statistics.fmean(values),
        problems,
    )
