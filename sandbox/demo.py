"""`--demo`: contracts typed by their people through the real bot.

Every step is a signed slash command, exactly as in the page; nothing is written to
the database directly. Two stories, one after the other in `#deals`:

1. *Brand refresh* with the Pixel & Co agency, finished and ended: the agency rule at
   work. Maya, its manager, adds the milestone, agrees and proposes a change; Milo, a
   member, may submit the work but is told that only a manager can propose changes.
2. *Website redesign* between Carol (client) and Fred (freelancer): active, milestone 1
   funded, and Fred's change request #1 raising milestone 2 from $2,500 to $3,000
   waiting for Carol's answer. This is what the README's walk-through and its picture
   (docs/sandbox.png, taken by `scripts/picture`) show.

The finished contract is ended, so the website redesign is the channel's only open
contract and commands need no `contract=<id>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from domain import export
from domain.model import Contract
from handlers.ids import Action

from .people import CHANNEL_ID, CLIENT, FREELANCER, MANAGER, MEMBER, Person
from .sandbox import Sandbox

AGENCY_CONTRACT = "Brand refresh"
CONTRACT = "Website redesign"


def agency_steps(sandbox: Sandbox) -> list[tuple[Person, str]]:
    """The finished agency contract: who in an agency may do what."""
    due = sandbox.clock().date() + timedelta(days=10)
    return [
        (
            CLIENT,
            f'/milestone new "{AGENCY_CONTRACT}" client=@carol agency="Pixel & Co" '
            "manager=@maya members=@milo currency=USD",
        ),
        (MANAGER, f'/milestone add "Logo and colours" 800 {due} "Logo, palette and type"'),
        (CLIENT, "/milestone start"),
        (MANAGER, "/milestone start"),
        (CLIENT, "/milestone fund"),
        # A member may not propose changes: refused, only Milo sees why.
        (MEMBER, '/milestone edit 1 amount=1000 message="Two more logo variants"'),
        # The manager may.
        (MANAGER, '/milestone edit 1 amount=1000 message="Two more logo variants"'),
        (CLIENT, "/milestone accept 1"),
        # A member may submit work.
        (MEMBER, '/milestone submit "Logo files are in the shared drive"'),
        (CLIENT, "/milestone approve"),
        (CLIENT, "/milestone end"),
    ]


def contract_steps(sandbox: Sandbox) -> list[tuple[Person, str]]:
    """The contract in progress that the walk-through starts from."""
    today = sandbox.clock().date()
    design_due = today + timedelta(days=21)
    build_due = today + timedelta(days=49)
    return [
        (
            CLIENT,
            f'/milestone new "{CONTRACT}" client=@carol freelancer=@fred currency=USD',
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


def demo_steps(sandbox: Sandbox) -> list[tuple[Person, str]]:
    return agency_steps(sandbox) + contract_steps(sandbox)


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
        if typed == "/milestone end":  # answered with a confirmation: click its button
            confirm_end(sandbox, who)
    return True


def confirm_end(sandbox: Sandbox, who: Person) -> None:
    """Click *End contract* on the confirmation `who` got for `/milestone end`."""
    confirmation = next(
        eph
        for eph in reversed(sandbox.slack.ephemerals(CHANNEL_ID, who.id))
        if Action.END_CONTRACT.value in str(eph.blocks)
    )
    sandbox.click(who.id, action_id=Action.END_CONTRACT.value, message_ts=confirmation.ts)
    sandbox.settle()


@dataclass(frozen=True)
class WaitingRequest:
    """The change request the demo leaves for the client, as the database holds it."""

    contract_title: str
    currency: str
    number: int
    proposed_by: str
    milestone: int
    amount_before_minor: int
    amount_after_minor: int


def waiting_request(sandbox: Sandbox) -> WaitingRequest:
    """The open contract's one pending request: an amount edit of one milestone."""
    with sandbox.runtime.sessions() as session, session.begin():
        contracts = export.export_contracts(session)["contracts"]
    (contract,) = [c for c in contracts if c["status"] == "active"]
    (request,) = [r for r in contract["change_requests"] if r["status"] == "pending"]
    (change,) = request["changes"]
    (milestone,) = [m for m in contract["milestones"] if m["number"] == change["milestone_number"]]
    return WaitingRequest(
        contract_title=contract["title"],
        currency=contract["currency"],
        number=request["number"],
        proposed_by=request["proposed_by"],
        milestone=milestone["number"],
        amount_before_minor=milestone["amount_minor"],
        amount_after_minor=change["fields"]["amount_minor"],
    )
