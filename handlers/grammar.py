"""The `/milestone` grammar: the text of a slash command becomes one typed command.

Pure Python, no Slack and no database. `parse(text)` takes the `text` field exactly as
Slack sends it with escaping on (mentions as `<@U123|alice>` or `<@U123>`, the user's
own `&`, `<`, `>` as `&amp;`, `&lt;`, `&gt;`) and returns one frozen command, or raises
`CommandSyntaxError` whose message says what is wrong and ends with the usage line of
the subcommand.

What is checked here is the *shape*: words, quotes, keys, mentions, numbers, and
which words make up the due date. What is checked later is the *meaning*: amounts (kept
as the raw text the user typed, such as `"$1,500"` or `"1.500,00 €"`, because only the
contract's currency and the person's locale can read them), due dates (kept as typed,
`Due`, because only the person's today can read `next friday`: domain.when), currency
codes, lengths of texts, who may do what.

A due date is one value: quoted (`"next friday"`, `due="next friday"`), or a single
word that is a date by itself (`2027-01-15`, `15.12.2026`, `tomorrow`, `friday`), or
else every unquoted word after it up to the next quoted value or `key=` (`next friday`,
`Dec 15`, `in 2 weeks`, `due=next friday`). So after a date of several words, a
description goes in quotes: `add "Design" 1500 next friday "Wireframes"`.

Free-text values (titles, descriptions, messages, notes, reasons, the agency's name)
come back as plain text: Slack's escaping is undone, a link reads as the text the user
typed, a user mention is kept as `<@U123>` and a channel as `<#C123>` (so a renderer
can show them as mentions), and `<!here>`-style broadcasts become inert `@here`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from domain.errors import InvalidInput
from domain.text import Command as Typed
from domain.text import Said, said
from domain.when import example_due

# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Due:
    """A due date as typed, read later in the person's calendar (domain.when).

    `loose` when it is several unquoted words: a description typed after them without
    quotes would have been read as part of the date."""

    text: str
    loose: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """Base of every command; `contract_id` comes from `contract=<id>`, if typed."""

    contract_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowHelp(Command):
    """`help [command]`, or empty text. `topic` is a known subcommand or None."""

    topic: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewModal(Command):
    """`new` with no arguments: open the "new contract" form."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewContract(Command):
    """`new "<title>" client=@user (freelancer=@user | agency="<name>" manager=@user,...)`.

    Exactly one provider side is set: either `freelancer_id`, or `agency_name` with at
    least one manager (and any number of members).
    """

    title: str
    client_id: str
    freelancer_id: str | None = None
    agency_name: str | None = None
    manager_ids: tuple[str, ...] = ()
    member_ids: tuple[str, ...] = ()
    currency: str | None = None

    @property
    def is_agency(self) -> bool:
        return self.agency_name is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class AddModal(Command):
    """`add` with no arguments: open the "add milestone" form."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AddMilestone(Command):
    """`add "<title>" <amount> <due> ["<description>"] [message="..."]`."""

    title: str
    amount: str
    due: Due
    description: str = ""
    message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EditModal(Command):
    """`edit` (number None) or `edit <n>` with no field: open the "edit milestone" form."""

    number: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EditMilestone(Command):
    """`edit <n> field=value ...`; a field left as None is unchanged (at least one is set).

    `description=""` gives `description == ""`: clear the description.
    """

    number: int
    title: str | None = None
    amount: str | None = None
    due: Due | None = None
    description: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteMilestone(Command):
    """`delete <n> [message="..."]`."""

    number: int
    message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartContract(Command):
    """`start` or `agree`: the invoker agrees to the terms as they stand."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FundMilestone(Command):
    """`fund`: fund the next milestone in order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitWork(Command):
    """`submit ["<note>"]`."""

    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApproveWork(Command):
    """`approve`: release the submitted milestone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestChanges(Command):
    """`changes "<note>"`: send the submitted work back (the note is required)."""

    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptRequest(Command):
    """`accept <request-number>`."""

    request_number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclineRequest(Command):
    """`decline <request-number> ["<reason>"]`."""

    request_number: int
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawRequest(Command):
    """`withdraw <request-number>`."""

    request_number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowStatus(Command):
    """`status`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowHistory(Command):
    """`history`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndContract(Command):
    """`end`: answered with a confirmation stating the money effect."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DisputeMilestone(Command):
    """`dispute [<n>] "<reason>"`: the milestone (None: the one in progress) and why."""

    number: int | None = None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SettleDispute(Command):
    """`settle <n> <amount-to-provider>`: propose (or agree to) a split of the escrow."""

    number: int
    amount: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowList(Command):
    """`list`: my contracts, in every channel, open first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasePart(Command):
    """`release <n> <amount>`: release part of milestone n's escrow now."""

    number: int
    amount: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PayBonus(Command):
    """`bonus <amount> ["<note>"]`: a bonus for the provider, outside escrow."""

    amount: str
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtendReview(Command):
    """`extend [<days>]`: the client asks for more time to review; the provider gives it."""

    days: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowPayouts(Command):
    """`payouts`: where the provider side is paid (no payout account with PAYMENTS=ledger)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChooseNotifications(Command):
    """`notify channel|dm|both|digest`: where I am told what needs my action; without a
    word (`choice` None), what I chose."""

    choice: str | None = None


NOTIFY_CHOICES = ("channel", "dm", "both", "digest")


class CommandSyntaxError(InvalidInput):
    """The text does not follow the grammar; `message` is shown to the user as is.

    `command` is the subcommand the message is about (None when none was recognised).
    """

    def __init__(self, message: Said | str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command


# --------------------------------------------------------------------------------------
# Usage and help texts (Slack mrkdwn)
# --------------------------------------------------------------------------------------

USAGE: dict[str, str] = {
    "help": "`/milestone help [command]`",
    "new": (
        '`/milestone new "<title>" client=@user freelancer=@user [currency=USD]` or '
        '`/milestone new "<title>" client=@user agency="<name>" manager=@user[,@user] '
        "[members=@user,...] [currency=EUR]`"
    ),
    "add": '`/milestone add "<title>" <amount> <due date> ["<description>"] [message="..."]`',
    "edit": (
        '`/milestone edit <n> [title="..."] [amount=<amount>] [due=<date>] '
        '[description="..."] [message="..."]`'
    ),
    "delete": '`/milestone delete <n> [message="..."]`',
    "start": "`/milestone start`",
    "agree": "`/milestone agree`",
    "fund": "`/milestone fund`",
    "submit": '`/milestone submit ["<note>"]`',
    "approve": "`/milestone approve`",
    "changes": '`/milestone changes "<note>"`',
    "accept": "`/milestone accept <request-number>`",
    "decline": '`/milestone decline <request-number> ["<reason>"]`',
    "withdraw": "`/milestone withdraw <request-number>`",
    "status": "`/milestone status`",
    "history": "`/milestone history`",
    "end": "`/milestone end`",
    "dispute": '`/milestone dispute [<n>] "<reason>"`',
    "settle": "`/milestone settle <n> <amount-to-provider>`",
    "list": "`/milestone list`",
    "notify": "`/milestone notify channel|dm|both|digest`",
    "release": "`/milestone release <n> <amount>`",
    "bonus": '`/milestone bonus <amount> ["<note>"]`',
    "extend": "`/milestone extend [<days>]`",
    "payouts": "`/milestone payouts`",
}

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def help_text(today: date, *, record_only: bool = True) -> str:
    """The guide for `/milestone help` (Slack mrkdwn), its example dates computed from
    `today` so they are always in the future. `record_only` (`PAYMENTS=ledger`): funding
    records the money; else (`PAYMENTS=stripe`) it gives the client a link to pay."""
    due = example_due(today)
    fund = (
        "records the next milestone's amount as funded (the bot holds no money: pay it "
        "yourselves), and the freelancer can start."
        if record_only
        else "gives you a link to pay the next milestone with Stripe; once Stripe confirms "
        "the payment it is funded, and the freelancer can start. Freelancers: "
        "`/milestone payouts` sets up the account you are paid to."
    )
    later = due + timedelta(days=30)
    return f"""\
*Milestone contracts, right in this channel* — agree on milestones, fund them one at \
a time, and get paid when the work is approved.

*1. Create a contract* (the client and the freelancer, picked from the @ list)
`/milestone new "Website redesign" client=@Dana freelancer=@Lee currency=USD`
For an agency: `/milestone new "Mobile app" client=@Dana agency="Acme Studio" \
manager=@Sam members=@Kim,@Jo`

*2. Add milestones* — title, amount, due date, and a description if you like
`/milestone add "Wireframes" 1500 USD {due.isoformat()} "Home and checkout pages"`
`/milestone add "Design" 1,500.00 next friday "Style guide"`

*Due dates* are read in your own time zone: `{due.isoformat()}`, \
`{_MONTHS[due.month - 1]} {due.day}`, `{due.day} {_MONTHS[due.month - 1]} {due.year}`, \
`tomorrow`, `next friday`, `in 2 weeks`. A date of several words goes right after the \
amount, and a description after it goes in quotes; with a key, write \
`due=next friday` or `due="next friday"`. The channel is told the day I understood.

*Amounts* as you write numbers — `1500`, `1,500.50`, or `1.500,50` if that is how your \
Slack language writes them — with the currency's symbol or code if you like \
(`$1,500`, `1500 EUR`). If an amount could be read two ways, such as `1.500`, I ask \
which one you mean.

*3. Agree and start* — both sides type `/milestone start` once the plan looks right.

*4. Fund* (client) — `/milestone fund` {fund}

*5. Deliver* (freelancer) — `/milestone submit "Figma link in the thread"`

*6. Approve* (client) — `/milestone approve` releases the money, or \
`/milestone changes "Please make the logo bigger"` asks for another round. \
If the client does neither, the money is released automatically after the review \
period (14 days unless set otherwise).

*Changing the plan after the start* — the freelancer (or an agency manager) proposes:
`/milestone edit 2 amount=1800 due={later.isoformat()} message="Extra page requested"`
and the client answers change request 1 with `/milestone accept 1` or \
`/milestone decline 1 "The budget is fixed"` (or the buttons on the request).
*Counter-offers* — instead of accepting or declining, the client can click \
*Suggest changes* on the request: the form opens with its changes, the client adjusts \
them (say the amount to 1700), and the freelancer accepts or declines that counter-offer \
(or suggests changes again). Whoever sent a request can click *Revise* to send a \
corrected one in its place, or *Withdraw* it.

*Paying early, a bonus, more time* — the client may release part of a milestone \
now with `/milestone release 2 500` (the rest stays in escrow until approval), or pay \
a bonus outside escrow: `/milestone bonus 200 "Thanks for the quick turnaround"`. \
While work waits for review, `/milestone extend` (or `/milestone extend 10`) asks the \
freelancer for more time — 7 days unless you say, at most twice per submission — \
and the automatic release moves once they click *Give more time*; the freelancer can \
also give time unasked with `/milestone extend 5`.

*Ending and disputes* — `/milestone end` first shows what happens to the money and \
an *End contract* button. With nothing in escrow the contract closes at once; if the \
freelancer ends, escrow goes back to the client at once. If the client ends while a \
milestone is funded, the freelancer has 7 days (unless set otherwise) to click \
*Accept refund* or *Dispute* on the notice, or the refund happens by itself. Instead \
of approving submitted work the client can dispute it: \
`/milestone dispute 2 "The pages don't match the wireframes"` (or the *Dispute* \
button). A dispute freezes that milestone's escrow until both sides agree on a split: \
`/milestone settle 2 600` proposes $600 to the freelancer and the rest back to the \
client, and the other side clicks *Agree to split* (or types the same split). An \
operator can also decide.

*Where you hear about it* — besides the channel, I send you a direct message when \
something needs you (a change request to answer, work to review, a milestone to fund). \
Choose with `/milestone notify both` (the default), `dm`, `channel` (no direct messages) \
or `digest`: one message at 09:00 on weekdays, in your time zone, listing everything \
that waits for you. For example: `/milestone notify digest`

*Also:* `/milestone status`, `/milestone history`, `/milestone delete 3`, \
`/milestone withdraw 1`, `/milestone end`, and `/milestone list` for all your \
contracts, in every channel. Type `new`, `add` or `edit` alone to fill in a form. \
More than one contract in the channel? I use the one you are party to; if that could \
be several, I ask which (or add `contract=<id>` to any command). \
Mistyped a command? I suggest the one you meant.\
"""


# --------------------------------------------------------------------------------------
# Lexical layer
# --------------------------------------------------------------------------------------

_QUOTES = frozenset('"“”„‟')
_QUOTE_RE = re.compile('["“”„‟]')
_SPACE_RE = re.compile(r"\s*")
_WORD_RE = re.compile(r"\S*")
_KEY_RE = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)=")
_MENTION_RE = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_MARKUP_RE = re.compile(r"<([^<>]*)>")
_ENTITY_RE = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_NUMBER_RE = re.compile(r"#?([0-9]+)")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CURRENCY_WORD_RE = re.compile(r"[A-Za-z]{3}")
_LETTER_RE = re.compile(r"[A-Za-z]")
_DIGIT_RE = re.compile(r"[0-9]")
_INVISIBLE_RE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
_MAX_DIGITS = 9
_ECHO_LIMIT = 40
_LIST_KEYS = frozenset({"manager", "members"})
# A word that is a due date by itself: digits with `-`, `/` or `.` (`2027-01-15`,
# `15.12.2026`, `12/15`), or one of these words. Any other first word of a due date
# starts a date of several words.
_NUMERIC_DATE_RE = re.compile(r"[0-9]{1,4}[-/.][0-9]{1,2}(?:[-/.][0-9]{1,4})?\.?")
_DATE_WORDS = frozenset(
    {"today", "tomorrow"}
    | {
        f"{day}{ending}"
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        for ending in ("", ".")
    }
    | {"monday", "tuesday", "tues", "wednesday", "thursday", "thur", "thurs", "friday"}
    | {"saturday", "sunday"}
)
# Three-letter words that are dates, not currency codes (`1500 dec 15`).
_NOT_CURRENCIES = frozenset(
    {"due", "now"}
    | {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
    | {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
)


@dataclass(frozen=True, slots=True)
class _Token:
    """One word of the command, quotes removed, still Slack-escaped."""

    value: str
    key: str | None  # lowercased `key` of `key=value`, else None
    quoted: bool
    start: int  # offsets in the original text
    end: int
    first: int  # index range in the token list (merged tokens span several)
    last: int


class _LexError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _tokenize(text: str) -> list[_Token]:
    """Split on whitespace; `"..."`, `“...”` and `key="..."` keep their spaces. Linear."""
    tokens: list[_Token] = []
    pos = 0
    length = len(text)
    while True:
        pos = _SPACE_RE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= length:
            return tokens
        start = pos
        key: str | None = None
        key_match = _KEY_RE.match(text, pos)
        if key_match is not None:
            key = key_match.group(1).lower()
            pos = key_match.end()
        if pos < length and text[pos] in _QUOTES:
            closing = _QUOTE_RE.search(text, pos + 1)
            if closing is None:
                opened = _echo(text[start:])
                raise _LexError(
                    f"The quote opened at {opened} is never closed. "
                    "Put a closing double quote after the value."
                )
            value = text[pos + 1 : closing.start()]
            pos = closing.end()
            if pos < length and not text[pos].isspace():
                raise _LexError(
                    f"Something follows the closing quote of {_echo(text[start:pos])} "
                    "without a space. Leave a space after a quoted value; for quotes "
                    "inside a value, use single quotes."
                )
            quoted = True
        else:
            word_end = _WORD_RE.match(text, pos).end()  # type: ignore[union-attr]
            value = text[pos:word_end]
            pos = word_end
            quoted = False
        index = len(tokens)
        tokens.append(_Token(value, key, quoted, start, pos, index, index))


def _merge(tokens: Sequence[_Token]) -> list[_Token]:
    """Glue `manager=<@U1>, <@U2>` into one value, and `amount=1500 USD` into one."""
    merged: list[_Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        j = i + 1
        if token.key in _LIST_KEYS:
            parts = [token.value]
            while (
                j < len(tokens)
                and tokens[j].key is None
                and not tokens[j].quoted
                and (parts[-1].endswith(",") or tokens[j].value.startswith(","))
            ):
                parts.append(tokens[j].value)
                j += 1
            value = "".join(parts)
        elif (
            token.key == "amount"
            and j < len(tokens)
            and _is_currency_word(tokens[j])
            and tokens[j].first == token.last + 1
        ):
            value = f"{token.value} {tokens[j].value}"
            j += 1
        elif token.key == "due" and not token.quoted and not _is_date_word(token.value):
            # `due=next friday`: the words up to the next quoted value or `key=`.
            parts = [token.value]
            while j < len(tokens) and _continues_loose_date(tokens[j - 1], tokens[j]):
                parts.append(tokens[j].value)
                j += 1
            if j == i + 1:
                merged.append(token)
                i += 1
                continue
            value = " ".join(parts)
        else:
            merged.append(token)
            i += 1
            continue
        last = tokens[j - 1]
        merged.append(replace(token, value=value, end=last.end, last=last.last))
        i = j
    return merged


def _is_currency_word(token: _Token) -> bool:
    return (
        token.key is None
        and not token.quoted
        and _CURRENCY_WORD_RE.fullmatch(token.value) is not None
        and token.value.lower() not in _NOT_CURRENCIES
    )


def _is_date_word(value: str) -> bool:
    """A word that is a whole due date by itself (`2027-01-15`, `tomorrow`, `friday`)."""
    return _NUMERIC_DATE_RE.fullmatch(value) is not None or value.lower() in _DATE_WORDS


def _continues_loose_date(previous: _Token, token: _Token) -> bool:
    """An unquoted word right after `previous`: part of a due date of several words."""
    return token.key is None and not token.quoted and token.first == previous.last + 1


def _plain(value: str) -> str:
    """Slack-escaped text → what the user meant (see the module docstring)."""
    return _ENTITY_RE.sub(_entity, _MARKUP_RE.sub(_markup, value))


def _entity(match: re.Match[str]) -> str:
    return _ENTITIES[match.group(1)]


def _markup(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f"<{target}>"
    if target.startswith("#"):
        return f"<{target}>"
    if target.startswith("!"):
        if label:
            return label
        name = target[1:].split("^", 1)[0]
        return f"@{name}"
    return label or target


def _echo(value: str) -> str:
    """A short, mrkdwn-safe rendering of what the user typed, for error messages."""
    shown = value if len(value) <= _ECHO_LIMIT else value[: _ECHO_LIMIT - 1] + "…"
    shown = shown.replace("`", "'").replace("\n", " ")
    return f"`{shown}`"


# --------------------------------------------------------------------------------------
# Syntactic layer
# --------------------------------------------------------------------------------------


def _error(message: str, command: str | None) -> CommandSyntaxError:
    if command is not None and command in USAGE:
        message = f"{message} Usage: {USAGE[command]}"
    return CommandSyntaxError(message, command=command)


@dataclass(slots=True)
class _Args:
    command: str
    text: str
    options: dict[str, _Token]
    positionals: list[_Token]
    contract_id: int | None
    today: date | None = None

    def fail(self, message: str) -> CommandSyntaxError:
        return _error(message, self.command)

    def allow(self, *keys: str) -> None:
        for key in self.options:
            if key not in keys:
                known = (*keys, "contract")
                allowed = ", ".join(f"`{k}=`" for k in known)
                close = difflib.get_close_matches(key[:20], known, n=1, cutoff=0.6)
                hint = f" Did you mean `{close[0]}=`?" if close else ""
                raise self.fail(
                    f"`/milestone {self.command}` has no option `{key}=`.{hint} "
                    f"It accepts {allowed}."
                )

    def due_examples(self) -> str:
        """Valid due dates to show in a refusal (from today, when known)."""
        words = "`next friday` or `in 2 weeks`"
        if self.today is None:
            return words
        return f"`{example_due(self.today).isoformat()}`, {words}"

    def no_positionals(self) -> None:
        if self.positionals:
            raise self.fail(
                f"`/milestone {self.command}` takes no other words, "
                f"but got {_echo(self.positionals[0].value)}."
            )

    def text_of(self, tokens: Sequence[_Token], what: str) -> str:
        """One value; several unquoted words in a row read as one text."""
        if len(tokens) == 1:
            return _plain(tokens[0].value)
        contiguous = all(b.first == a.last + 1 for a, b in zip(tokens, tokens[1:], strict=False))
        if contiguous and not any(t.quoted for t in tokens):
            return _plain(self.text[tokens[0].start : tokens[-1].end])
        raise self.fail(f"Put the whole {what} in one pair of double quotes.")

    def text_option_or_rest(self, key: str, rest: Sequence[_Token], what: str) -> str | None:
        if key in self.options:
            if rest:
                raise self.fail(
                    f"The {what} is given twice: as `{key}=` and as {_echo(rest[0].value)}."
                )
            return _plain(self.options[key].value)
        if rest:
            return self.text_of(rest, what)
        return None


def parse(text: str, *, today: date | None = None) -> Command:
    """Parse the `text` of `/milestone ...` into a command, or raise CommandSyntaxError.

    `today` only serves the examples in refusals (a valid due date from today)."""
    try:
        tokens = _tokenize(text)
    except _LexError as exc:
        raise _error(exc.message, _guess_command(text)) from None
    head = next((t for t in tokens if t.key != "contract"), None)
    command = "help" if head is None else _command_name(text, head)
    contract_id = _contract_id([t for t in tokens if t.key == "contract"], command)
    body = _merge([t for t in tokens if t is not head and t.key != "contract"])
    options: dict[str, _Token] = {}
    positionals: list[_Token] = []
    for token in body:
        if token.key is None:
            positionals.append(token)
        elif token.key in options:
            raise _error(f"`{token.key}=` is given twice; give it once.", command)
        else:
            options[token.key] = token
    args = _Args(command, text, options, positionals, contract_id, today)
    return _PARSERS[command](args)


def _command_name(text: str, head: _Token) -> str:
    if head.key is not None or head.quoted:
        raise _error(
            f"Begin with a command, such as `/milestone add ...`; "
            f"{_echo(text[head.start : head.end])} comes after it. Commands: {_command_list()}.",
            None,
        )
    word = _INVISIBLE_RE.sub("", head.value).lower().removeprefix("/")
    if word in USAGE:
        return word
    suggestion = difflib.get_close_matches(word[:20], list(USAGE), n=1, cutoff=0.6)
    typed = _plain(head.value)
    shown = typed if len(typed) <= _ECHO_LIMIT else typed[: _ECHO_LIMIT - 1] + "…"
    if suggestion:
        # The exact text to type again, as a command: code in a message, plain words in
        # a form or a notification (no backticks).
        raise CommandSyntaxError(
            said(
                f'I don\'t know the command "{shown}". Did you mean ',
                Typed(_retyped(text, head, suggestion[0])),
                "? All commands: ",
                Typed("help"),
                ".",
            )
        )
    raise _error(
        f"I don't know the command {_echo(head.value)}. "
        f"Commands: {_command_list()}. See `/milestone help`.",
        None,
    )


def _retyped(text: str, head: _Token, name: str) -> str:
    """`text` with its mistyped command word replaced by `name` (the rest as typed, if it
    is short and holds no mention or link, else left out as "…")."""
    before, after = text[: head.start].strip(), text[head.end :].strip()
    rest = " ".join(part for part in (before, after) if part)
    if not rest:
        return name
    if len(rest) > 80 or "<" in rest or "`" in rest or "\n" in rest:
        return f"{name} …"
    return f"{name} {_ENTITY_RE.sub(_entity, rest)}"


def _command_list() -> str:
    return ", ".join(f"`{name}`" for name in USAGE)


def _guess_command(text: str) -> str | None:
    for word in text.split(maxsplit=3)[:3]:
        name = word.lower()
        if name in USAGE:
            return name
        if not name.startswith("contract="):
            return None
    return None


def _contract_id(tokens: Sequence[_Token], command: str) -> int | None:
    if not tokens:
        return None
    if len(tokens) > 1:
        raise _error("`contract=` is given twice; give it once.", command)
    value = tokens[0].value
    number = _positive_int(value)
    if number is None:
        raise _error(
            f"`contract=` takes the contract's number, like `contract=12`, not {_echo(value)}.",
            command,
        )
    return number


def _positive_int(value: str) -> int | None:
    """`3` or `#3` → 3; anything else (0, too many digits, words) → None."""
    match = _NUMBER_RE.fullmatch(value)
    if match is None:
        return None
    digits = match.group(1).lstrip("0")
    if not digits or len(digits) > _MAX_DIGITS:
        return None
    return int(digits)


def _number(args: _Args, token: _Token | None, what: str) -> int:
    if token is None:
        raise args.fail(f"Which {what}? Give its number, for example `3`.")
    number = _positive_int(token.value)
    if number is not None:
        return number
    match = _NUMBER_RE.fullmatch(token.value)
    if match is not None and not match.group(1).lstrip("0"):
        raise args.fail(f"{what.capitalize()} numbers start at 1, so `0` is not one.")
    if match is not None:
        raise args.fail(f"There is no {what} {_echo(token.value)}; that number is too large.")
    raise args.fail(
        f"{_echo(token.value)} is not a {what} number. Use the number shown by "
        "`/milestone status`, for example `3`."
    )


def _due_option(args: _Args, token: _Token) -> Due:
    """`due=2027-01-15`, `due="next friday"`, `due=next friday` (glued by `_merge`)."""
    text = " ".join(_plain(token.value).split())
    if not text:
        raise args.fail(f"`due=` is empty; give a date such as {args.due_examples()}.")
    return Due(text, loose=token.last > token.first)


def _take_due(args: _Args, rest: list[_Token]) -> Due:
    """The due date at the head of `rest`: one quoted value, one word that is a date by
    itself, or the unquoted words up to the next quoted value (see the module doc)."""
    if not rest:
        raise args.fail(
            f"The due date is missing; put it after the amount, such as {args.due_examples()}."
        )
    first = rest.pop(0)
    words = [first]
    if not first.quoted and not _is_date_word(first.value):
        while rest and _continues_loose_date(words[-1], rest[0]):
            words.append(rest.pop(0))
    text = " ".join(" ".join(_plain(word.value) for word in words).split())
    if not text:
        raise args.fail(f"The due date is empty; give a date such as {args.due_examples()}.")
    return Due(text, loose=len(words) > 1)


def _mentions(args: _Args, key: str, token: _Token) -> tuple[str, ...]:
    ids = dict.fromkeys(  # ordered and without repeats
        _mention(args, key, part.strip()) for part in token.value.split(",") if part.strip()
    )
    if not ids:
        raise args.fail(f"`{key}=` needs a person: pick them from the @ list, like `{key}=@dana`.")
    return tuple(ids)


def _mention(args: _Args, key: str, value: str) -> str:
    match = _MENTION_RE.fullmatch(value)
    if match is not None:
        return match.group(1)
    pick = (
        "Type @ and pick the person from Slack's list so it becomes a real mention (it turns blue)."
    )
    if value.startswith("@"):
        raise args.fail(f"{_echo(value)} after `{key}=` is plain text, not a mention. {pick}")
    if value.startswith("<!"):
        raise args.fail(f"`{key}=` needs one person, not a group like {_echo(value)}. {pick}")
    if value.startswith("<#"):
        raise args.fail(f"`{key}=` needs a person, not a channel. {pick}")
    raise args.fail(f"{_echo(value)} after `{key}=` is not a person. {pick}")


def _single_mention(args: _Args, key: str) -> str | None:
    token = args.options.get(key)
    if token is None:
        return None
    ids = _mentions(args, key, token)
    if len(ids) > 1:
        raise args.fail(f"`{key}=` takes one person only.")
    return ids[0]


def _required_text(args: _Args, value: str, what: str) -> str:
    if not value.strip():
        raise args.fail(f"The {what} is empty.")
    return value


def _optional_text(value: str | None) -> str | None:
    return value if value else None


# --------------------------------------------------------------------------------------
# One parser per subcommand
# --------------------------------------------------------------------------------------


def _parse_help(args: _Args) -> Command:
    topic: str | None = None
    if args.positionals:
        word = _INVISIBLE_RE.sub("", args.positionals[0].value).lower()
        topic = word if word in USAGE else None
    return ShowHelp(topic=topic, contract_id=args.contract_id)


def _parse_new(args: _Args) -> Command:
    keys = ("client", "freelancer", "agency", "manager", "members", "currency")
    args.allow(*keys)
    if not args.options and not args.positionals:
        return NewModal(contract_id=args.contract_id)
    if not args.positionals:
        raise args.fail("The contract's title is missing; put it in quotes after `new`.")
    for index, token in enumerate(args.positionals):
        plain_mention = index > 0 and not token.quoted and token.value.startswith("@")
        if _MENTION_RE.fullmatch(token.value) or plain_mention:
            raise args.fail(
                f"{_echo(token.value)} has no role: put it after `client=`, `freelancer=`, "
                "`manager=` or `members=` (several people: separate them with commas)."
            )
    title = _required_text(args, args.text_of(args.positionals, "title"), "title")
    client_id = _single_mention(args, "client")
    if client_id is None:
        raise args.fail("Who is the client? Add `client=@person`.")
    freelancer_id = _single_mention(args, "freelancer")
    agency_token = args.options.get("agency")
    manager_token = args.options.get("manager")
    members_token = args.options.get("members")
    if freelancer_id is not None and agency_token is not None:
        raise args.fail(
            "A contract has a freelancer or an agency, not both: keep `freelancer=` or `agency=`."
        )
    if agency_token is None:
        for extra in (manager_token, members_token):
            if extra is not None:
                raise args.fail(
                    f'`{extra.key}=` is for agency contracts; add `agency="<name>"`, '
                    "or use `freelancer=@person` alone."
                )
        if freelancer_id is None:
            raise args.fail(
                'Who does the work? Add `freelancer=@person`, or `agency="<name>"` '
                "with `manager=@person`."
            )
    agency_name: str | None = None
    manager_ids: tuple[str, ...] = ()
    member_ids: tuple[str, ...] = ()
    if agency_token is not None:
        agency_name = _required_text(args, _plain(agency_token.value), "agency's name")
        if manager_token is None:
            raise args.fail("An agency contract needs at least one manager: add `manager=@person`.")
        manager_ids = _mentions(args, "manager", manager_token)
        if members_token is not None:
            member_ids = _mentions(args, "members", members_token)
    currency: str | None = None
    if "currency" in args.options:
        currency = args.options["currency"].value.strip().upper()
        if not currency:
            raise args.fail("`currency=` is empty; give a code such as `currency=USD`.")
    return NewContract(
        title=title,
        client_id=client_id,
        freelancer_id=freelancer_id,
        agency_name=agency_name,
        manager_ids=manager_ids,
        member_ids=member_ids,
        currency=currency,
        contract_id=args.contract_id,
    )


def _parse_add(args: _Args) -> Command:
    fields = ("title", "amount", "due", "description")
    args.allow(*fields, "message")
    if not args.positionals and not any(key in args.options for key in fields):
        if "message" in args.options:
            raise args.fail("Say which milestone to add; `message=` goes along with it.")
        return AddModal(contract_id=args.contract_id)
    rest = list(args.positionals)
    options = args.options

    if "title" in options:
        title = _plain(options["title"].value)
    elif not rest:
        raise args.fail("The title is missing; put it in quotes right after `add`.")
    else:
        first = rest.pop(0)
        if not first.quoted and _looks_like_amount_or_date(first.value):
            raise args.fail(
                f"The title is missing: {_echo(first.value)} looks like an amount or a "
                "date. Put the title first, in quotes (also when it is a number)."
            )
        title = _plain(first.value)
    title = _required_text(args, title, "title")

    if "amount" in options:
        amount = options["amount"].value
    else:
        amount = _take_amount(args, rest)
    amount = _plain(amount).strip()
    if not amount:
        raise args.fail("The amount is empty.")

    if rest and not rest[0].quoted and rest[0].value.lower() == "due" and len(rest) > 1:
        rest.pop(0)  # `... 1500 due 2026-03-01` reads naturally too
    due = _due_option(args, options["due"]) if "due" in options else _take_due(args, rest)

    description = args.text_option_or_rest("description", rest, "description") or ""
    message = _optional_text(_message(args))
    return AddMilestone(
        title=title,
        amount=amount,
        due=due,
        description=description,
        message=message,
        contract_id=args.contract_id,
    )


def _looks_like_amount_or_date(value: str) -> bool:
    """`1500`, `$1,500`, `2026-03-01`: digits and no letters (a linear test)."""
    return _DIGIT_RE.search(value) is not None and _LETTER_RE.search(value) is None


def _take_amount(args: _Args, rest: list[_Token]) -> str:
    if not rest:
        raise args.fail("Amount is missing.")
    token = rest[0]
    if _DATE_RE.fullmatch(token.value):
        raise args.fail(
            f"Amount is missing: {_echo(token.value)} looks like the due date. "
            "Put the amount before it."
        )
    # `USD 1500`: a currency code in front of the number.
    if (
        len(rest) > 1
        and _is_currency_word(token)
        and _DIGIT_RE.search(rest[1].value)
        and not _DATE_RE.fullmatch(rest[1].value)
    ):
        number = rest[1]
        del rest[:2]
        return f"{token.value} {number.value}"
    if _DIGIT_RE.search(token.value) is None:
        raise args.fail(
            f"{_echo(token.value)} is not an amount. If the title has several words, put it "
            'in quotes, like `"Logo design"`.'
        )
    rest.pop(0)
    amount = token.value
    if rest and _is_currency_word(rest[0]):
        amount = f"{amount} {rest.pop(0).value}"  # `1500 USD`
    return amount


def _message(args: _Args) -> str | None:
    token = args.options.get("message")
    return None if token is None else _plain(token.value)


def _parse_edit(args: _Args) -> Command:
    fields = ("title", "amount", "due", "description")
    args.allow(*fields, "message")
    if not args.positionals:
        if args.options:
            raise args.fail("Which milestone? Put its number right after `edit`.")
        return EditModal(contract_id=args.contract_id)
    number = _number(args, args.positionals[0], "milestone")
    if len(args.positionals) > 1:
        raise args.fail(
            f"Say which field {_echo(args.positionals[1].value)} is for, like `amount=1800`; "
            'if it belongs to the value before it, quote that value: `title="New title"`.'
        )
    options = args.options
    if not any(key in options for key in fields):
        if "message" in options:
            raise args.fail(
                "Nothing to change: add a field such as `amount=1800` next to `message=`."
            )
        return EditModal(number=number, contract_id=args.contract_id)
    title: str | None = None
    if "title" in options:
        title = _required_text(args, _plain(options["title"].value), "title")
    amount: str | None = None
    if "amount" in options:
        amount = _plain(options["amount"].value).strip()
        if not amount:
            raise args.fail("The amount is empty.")
    due = _due_option(args, options["due"]) if "due" in options else None
    description = _plain(options["description"].value) if "description" in options else None
    return EditMilestone(
        number=number,
        title=title,
        amount=amount,
        due=due,
        description=description,
        message=_optional_text(_message(args)),
        contract_id=args.contract_id,
    )


def _parse_delete(args: _Args) -> Command:
    args.allow("message")
    if len(args.positionals) > 1:
        raise args.fail(
            f"Only one milestone number, please; put a message as "
            f'`message="..."` (got {_echo(args.positionals[1].value)}).'
        )
    number = _number(args, args.positionals[0] if args.positionals else None, "milestone")
    return DeleteMilestone(
        number=number, message=_optional_text(_message(args)), contract_id=args.contract_id
    )


def _parse_notify(args: _Args) -> Command:
    args.allow()
    if not args.positionals:
        return ChooseNotifications(contract_id=args.contract_id)
    if len(args.positionals) > 1:
        raise args.fail("Choose one: `channel`, `dm`, `both` or `digest`.")
    word = _INVISIBLE_RE.sub("", args.positionals[0].value).lower()
    if word in ("direct", "dms", "im"):
        word = "dm"
    if word not in NOTIFY_CHOICES:
        close = difflib.get_close_matches(word[:20], NOTIFY_CHOICES, n=1, cutoff=0.6)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise args.fail(
            f"{_echo(args.positionals[0].value)} is not a choice.{hint} "
            "Choose `channel`, `dm`, `both` or `digest`."
        )
    return ChooseNotifications(choice=word, contract_id=args.contract_id)


def _no_arguments(factory: Callable[..., Command]) -> Callable[[_Args], Command]:
    def parse_bare(args: _Args) -> Command:
        args.allow()
        args.no_positionals()
        return factory(contract_id=args.contract_id)

    return parse_bare


def _parse_submit(args: _Args) -> Command:
    args.allow("note")
    note = args.text_option_or_rest("note", args.positionals, "note")
    return SubmitWork(note=_optional_text(note), contract_id=args.contract_id)


def _parse_changes(args: _Args) -> Command:
    args.allow("note")
    note = args.text_option_or_rest("note", args.positionals, "note")
    if note is None:
        raise args.fail("Say what should change: the note is required.")
    note = _required_text(args, note, "note")
    return RequestChanges(note=note, contract_id=args.contract_id)


def _request_number(args: _Args) -> int:
    token = args.positionals[0] if args.positionals else None
    return _number(args, token, "request")


def _parse_accept(args: _Args) -> Command:
    args.allow()
    number = _request_number(args)
    if len(args.positionals) > 1:
        raise args.fail(
            f"`accept` takes only the request number, not {_echo(args.positionals[1].value)}."
        )
    return AcceptRequest(request_number=number, contract_id=args.contract_id)


def _parse_decline(args: _Args) -> Command:
    args.allow("reason")
    number = _request_number(args)
    reason = args.text_option_or_rest("reason", args.positionals[1:], "reason")
    return DeclineRequest(
        request_number=number, reason=_optional_text(reason), contract_id=args.contract_id
    )


def _parse_dispute(args: _Args) -> Command:
    args.allow("reason")
    rest = list(args.positionals)
    number: int | None = None
    if rest and not rest[0].quoted and _positive_int(rest[0].value) is not None:
        number = _number(args, rest.pop(0), "milestone")
    reason = args.text_option_or_rest("reason", rest, "reason")
    if reason is None:
        raise args.fail("Say why: the reason is required, in quotes.")
    reason = _required_text(args, reason, "reason")
    return DisputeMilestone(number=number, reason=reason, contract_id=args.contract_id)


def _parse_settle(args: _Args) -> Command:
    args.allow("amount")
    rest = list(args.positionals)
    number = _number(args, rest.pop(0) if rest else None, "milestone")
    if "amount" in args.options:
        amount = args.options["amount"].value
    else:
        if not rest:
            raise args.fail("How much goes to the provider? Give the amount after the number.")
        amount = _take_amount(args, rest)
    amount = _plain(amount).strip()
    if not amount:
        raise args.fail("The amount is empty.")
    if rest:
        raise args.fail(
            f"`settle` takes a milestone number and the amount to the provider, not "
            f"{_echo(rest[0].value)}."
        )
    return SettleDispute(number=number, amount=amount, contract_id=args.contract_id)


def _parse_release(args: _Args) -> Command:
    args.allow("amount")
    rest = list(args.positionals)
    number = _number(args, rest.pop(0) if rest else None, "milestone")
    if "amount" in args.options:
        amount = args.options["amount"].value
    else:
        amount = _take_amount(args, rest)
    amount = _plain(amount).strip()
    if not amount:
        raise args.fail("The amount is empty.")
    if rest:
        raise args.fail(
            f"`release` takes a milestone number and an amount, not {_echo(rest[0].value)}."
        )
    return ReleasePart(number=number, amount=amount, contract_id=args.contract_id)


def _parse_bonus(args: _Args) -> Command:
    args.allow("amount", "note")
    rest = list(args.positionals)
    if "amount" in args.options:
        amount = args.options["amount"].value
    else:
        amount = _take_amount(args, rest)
    amount = _plain(amount).strip()
    if not amount:
        raise args.fail("The amount is empty.")
    note = args.text_option_or_rest("note", rest, "note")
    return PayBonus(amount=amount, note=_optional_text(note), contract_id=args.contract_id)


def _parse_extend(args: _Args) -> Command:
    args.allow("days")
    words = list(args.positionals)
    if "days" in args.options:
        words.insert(0, args.options["days"])
    if not words:
        return ExtendReview(contract_id=args.contract_id)
    days = _positive_int(words[0].value.lower().removesuffix("d"))
    if days is None:
        raise args.fail(f"{_echo(words[0].value)} is not a number of days; try `extend 7`.")
    if words[1:] and words[1].value.lower() in ("day", "days"):
        words.pop(1)
    if len(words) > 1:
        raise args.fail(f"`extend` takes only a number of days, not {_echo(words[1].value)}.")
    return ExtendReview(days=days, contract_id=args.contract_id)


def _parse_withdraw(args: _Args) -> Command:
    args.allow()
    number = _request_number(args)
    if len(args.positionals) > 1:
        raise args.fail(
            f"`withdraw` takes only the request number, not {_echo(args.positionals[1].value)}."
        )
    return WithdrawRequest(request_number=number, contract_id=args.contract_id)


_PARSERS: dict[str, Callable[[_Args], Command]] = {
    "help": _parse_help,
    "new": _parse_new,
    "add": _parse_add,
    "edit": _parse_edit,
    "delete": _parse_delete,
    "start": _no_arguments(StartContract),
    "agree": _no_arguments(StartContract),
    "fund": _no_arguments(FundMilestone),
    "submit": _parse_submit,
    "approve": _no_arguments(ApproveWork),
    "changes": _parse_changes,
    "accept": _parse_accept,
    "decline": _parse_decline,
    "withdraw": _parse_withdraw,
    "status": _no_arguments(ShowStatus),
    "history": _no_arguments(ShowHistory),
    "end": _no_arguments(EndContract),
    "dispute": _parse_dispute,
    "settle": _parse_settle,
    "list": _no_arguments(ShowList),
    "notify": _parse_notify,
    "release": _parse_release,
    "bonus": _parse_bonus,
    "extend": _parse_extend,
    "payouts": _no_arguments(ShowPayouts),
}
