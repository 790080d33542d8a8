"""`milestone-bot payments reconcile`: the ledger against the payments provider.

Every payment the record says was made and every movement it carried out is looked up
at the provider (Stripe: the contract's transfer group, the payments and their
refunds); each difference is printed on stdout, one per line, and the exit code is 1
when there is one (0: they agree). Nothing is changed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.app import Runtime


@dataclass(frozen=True)
class Cli:
    """What the commands use of bot.cli (handed in: bot.cli imports this module)."""

    database: Callable[..., AbstractContextManager[Runtime]]  # bot.cli._existing_database
    refusal: Callable[..., Exception]  # bot.cli.Refusal(message, code=…)


def register(commands: Any, cli: Cli) -> None:
    """Add `payments` and its commands to the CLI's subparsers."""
    payments = commands.add_parser("payments", help="payments through Stripe: reconcile")
    sub = payments.add_subparsers(title="payments commands")
    sub.add_parser(
        "reconcile", help="compare the ledger with Stripe; exit 1 on any difference"
    ).set_defaults(run=partial(_reconcile, cli))
    payments.set_defaults(run=partial(_reconcile, cli))


def _reconcile(cli: Cli, settings: Settings, args: argparse.Namespace) -> int:
    from domain import payments
    from domain.payments import ProviderRefused, ProviderUnavailable
    from payments.stripe_connect import StripeConnect

    stripe = settings.require_payments()
    if stripe is None:
        raise cli.refusal(
            "PAYMENTS=ledger: the bot moves no money, so there is nothing to reconcile with "
            "a provider (`milestone-bot ledger verify` checks the record itself)"
        )
    provider = StripeConnect(
        api_key=stripe.api_key, webhook_secret=stripe.webhook_secret, api_base=stripe.api_base
    )
    with (
        cli.database(settings, command="payments reconcile", verb="reading") as runtime,
        runtime.sessions() as session,
    ):
        records = payments.records_to_reconcile(session)
    found: list[str] = []
    try:
        for ours in records:
            theirs = provider.objects_of(ours.contract_id, payment_intents=ours.intents)
            found += payments.differences(ours, theirs)
    except (ProviderUnavailable, ProviderRefused) as error:
        raise cli.refusal(f"could not read Stripe: {error}", code=3) from None
    for line in found:
        print(line)
    payments_count = sum(len(r.payments) for r in records)
    movements = sum(len(r.movements) for r in records)
    summary = (
        f"{len(records)} contract{'' if len(records) == 1 else 's'}, {payments_count} "
        f"payment{'' if payments_count == 1 else 's'}, {movements} "
        f"movement{'' if movements == 1 else 's'}: "
    )
    if found:
        print(f"{summary}{len(found)} difference{'' if len(found) == 1 else 's'}")
        return 1
    print(f"{summary}the ledger and Stripe agree")
    return 0
