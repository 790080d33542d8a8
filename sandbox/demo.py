"""`--demo`: a contract in progress, typed by its people through the real bot.

Every step is a signed slash command, exactly as in the page; nothing is written to
the database directly. The result: "Website redesign" between Carol (client) and
Fred (freelancer), active, milestone 1 funded, and Fred's change request raising
milestone 2 waiting for Carol's answer.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from domain.model import Contract

from .people import CLIENT, FREELANCER, Person
from .sandbox import Sandbox


def demo_steps(sandbox: Sandbox) -> list[tuple[Person, str]]:
    today = sandbox.clock().date()
    design_due = today + timedelta(days=21)
    build_due = today + timedelta(days=49)
    return [
        (
            CLIENT,
            '/milestone new "Website redesign" client=@carol freelancer=@fred currency=USD',
        ),
        (CLIENT, f'/milestone add "Design" 1500 {design_due} "Wireframes and visual design"'),
        (CLIENT, f'/milestone add "Build" 2500 {build_due} "Front end, CMS and launch"'),
        (CLIENT, "/milestone start"),
        (FREELANCER, "/milestone start"),
        (CLIENT, "/milestone fund"),
        (
            FREELANCER,
            '/milestone edit 2 amount=3000 message="The CMS needs an importer for the old blog"',
        ),
    ]


def seed_demo(sandbox: Sandbox) -> bool:
    """Run the demo's commands one after another, each after the last one settled.

    Does nothing and returns False when the database already holds a contract (a
    `--db` kept from an earlier run): a second open contract in the channel would make
    every command ask which one is meant.
    """
    with sandbox.runtime.sessions() as session:
        if session.scalar(select(Contract.id).limit(1)) is not None:
            return False
    for who, typed in demo_steps(sandbox):
        sandbox.say(who.id, typed)
        sandbox.settle()
    return True
