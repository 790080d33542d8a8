"""A local Slack: Web API + response_urls (``SlackEmulator``) and the platform side that
calls the app (``SlackDriver``). Stdlib + slack_sdk only; loopback HTTP, random port.

Typical end-to-end use::

    from slack_sdk import WebClient
    from sandbox.emulator import SlackDriver, SlackEmulator

    with SlackEmulator() as slack:                       # serves on 127.0.0.1:<random>
        slack.add_user("U0001", "alice", tz="Europe/Berlin", tz_offset=3600)
        slack.add_channel("C0001", "general", members=["U0001"])
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
        ...                                              # start the bolt app with `client`
        driver = SlackDriver(slack, app_url, signing_secret="secret")
        driver.command("U0001", "new", channel_id="C0001")    # signed, like Slack
        msg = slack.wait_for(lambda: slack.messages("C0001"))[-1]
        driver.click_button("U0001", "C0001", msg.ts, "Approve")
        driver.submit_view("U0001", inputs={"amount": "100"}) # top modal of U0001

The emulator records every Web API call (``calls``/``calls_to``), keeps channel history,
ephemerals, modal stacks and Home views, issues single-use trigger_ids (3 s) and
response_urls (5 uses), and can inject faults: refusals (``fail_next`` for a number of calls,
``fail_for`` for a span of time), slowness (``delay``) and ambiguous outcomes, where a call is
applied but its answer comes late (``answer_late``) or never (``drop_after_apply``; see
``ApiCall.delivery``). Accessors return copies; everything is thread-safe. ``wait_for``
polls for asynchronous effects (bolt acks first and runs listeners afterwards).
"""

from sandbox.http import HttpReply, HttpRequest

from .blocks import build_state_values, element_value
from .driver import Response, SentRequest, SlackDriver
from .models import (
    ApiCall,
    ButtonRef,
    Channel,
    Delivery,
    EphemeralMessage,
    ResponsePost,
    StoredMessage,
    User,
)
from .server import DEFAULT_SCOPES, SlackEmulator

__all__ = [
    "DEFAULT_SCOPES",
    "ApiCall",
    "ButtonRef",
    "Channel",
    "Delivery",
    "EphemeralMessage",
    "HttpReply",
    "HttpRequest",
    "Response",
    "ResponsePost",
    "SentRequest",
    "SlackDriver",
    "SlackEmulator",
    "StoredMessage",
    "User",
    "build_state_values",
    "element_value",
]
