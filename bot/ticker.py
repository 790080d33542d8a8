"""The periodic sweep every long-running process of the bot starts (serve's work
process, `serve --socket-mode`, `worker`): automatic releases, reminders, outbox
retries and housekeeping, through the same services a click calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.app import Runtime
    from bot.delivery import Delivery


def start_ticker(runtime: Runtime, delivery: Delivery) -> BackgroundScheduler:
    from bot.app import forget_old_receipts
    from bot.directory import SlackTimeZones
    from scheduler.jobs import start_scheduler, sweep_once

    time_zones = SlackTimeZones(delivery.client)

    def sweep() -> None:
        sweep_once(
            runtime.sessions,
            runtime.clock,
            policy=runtime.policy,
            outbox=delivery,
            time_zone_of=time_zones,
            housekeeping=lambda: forget_old_receipts(runtime),
        )

    return start_scheduler(sweep, every_seconds=runtime.settings.SWEEP_SECONDS)
