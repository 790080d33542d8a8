"""Small constructors for the slack_sdk block objects the builders use."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from handlers.blocks.format import CONTEXT_LIMIT, FIELD_LIMIT, SECTION_LIMIT, inert, shorten

MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
BUTTON_TEXT_LIMIT = 75


def mrkdwn(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text)


def plain(text: str) -> PlainTextObject:
    return PlainTextObject(text=inert(text), emoji=True)


def section(
    text: str | None = None,
    *,
    fields: list[str] | None = None,
    block_id: str | None = None,
) -> SectionBlock:
    """A mrkdwn section; text is cut at 3000 chars and each field at 2000 (Slack's limits)."""
    return SectionBlock(
        text=mrkdwn(shorten(text, SECTION_LIMIT)) if text else None,
        fields=[mrkdwn(shorten(f, FIELD_LIMIT)) for f in fields] if fields else None,
        block_id=block_id,
    )


def context(*texts: str, block_id: str | None = None) -> ContextBlock:
    return ContextBlock(
        elements=[mrkdwn(shorten(t, CONTEXT_LIMIT)) for t in texts if t][:10],
        block_id=block_id,
    )


def divider() -> DividerBlock:
    return DividerBlock()


def confirm(title: str, text: str, *, ok: str, deny: str = "Cancel") -> ConfirmObject:
    """A confirm dialog. Plain text only: bot-made words and amounts, no user text."""
    return ConfirmObject(
        title=plain(shorten(title, 100)),
        text=plain(shorten(text, 300)),
        confirm=plain(shorten(ok, 30)),
        deny=plain(shorten(deny, 30)),
    )


def button(
    label: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm_with: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(
        text=plain(shorten(label, BUTTON_TEXT_LIMIT)),
        action_id=str(action_id),
        value=value,
        style=style,
        confirm=confirm_with,
    )


def actions(block_id: str, buttons: list[ButtonElement]) -> ActionsBlock:
    return ActionsBlock(block_id=block_id, elements=list(buttons)[:25])
