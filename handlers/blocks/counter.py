"""The forms that replace a pending change request in one step: *Suggest changes* (the
answering side's counter-offer) and *Revise* (the proposer's own request). Both are the
propose-changes form, prefilled with what the request proposes."""

from __future__ import annotations

from slack_sdk.models.views import View

from domain.model import ChangeRequest, Contract
from domain.rules import Side, side_of
from handlers.blocks.describe import provider_speakers
from handlers.blocks.format import user
from handlers.blocks.modals import Replacing, build_propose_changes_modal
from handlers.ids import View as ViewId
from handlers.payloads import ModalContext

_OTHER = {Side.CLIENT: Side.PROVIDER, Side.PROVIDER: Side.CLIENT}


def side_speakers(contract: Contract, side: Side) -> str:
    """Who speaks for a side: "<@C>", "<@F>", "an agency manager (<@M1> or <@M2>)"."""
    return user(contract.client_id) if side == Side.CLIENT else provider_speakers(contract)


def side_name(contract: Contract, side: Side) -> str:
    if side == Side.CLIENT:
        return "the client"
    return "the agency" if contract.is_agency else "the freelancer"


def build_counter_modal(ctx: ModalContext, contract: Contract, request: ChangeRequest) -> View:
    """*Suggest changes* to a pending request: the new request, from the side that
    answers it, goes to the side that proposed it."""
    to = side_of(contract.role_of(request.proposed_by))
    number = request.number
    return build_propose_changes_modal(
        ctx,
        contract,
        replacing=Replacing(
            request=request,
            callback=ViewId.COUNTER,
            title=f"Counter-offer to #{number}",
            note=(
                f"*Your counter-offer to change request #{number}* from "
                f"{user(request.proposed_by)}. It starts with what #{number} proposes; "
                f"when you send it, #{number} becomes _countered_ and yours takes its place."
            ),
            answerer=side_speakers(contract, to),
            recipient=side_name(contract, to),
        ),
    )


def build_revise_modal(ctx: ModalContext, contract: Contract, request: ChangeRequest) -> View:
    """*Revise* one's own pending request: the new one replaces it, for the same side to
    answer."""
    to = _OTHER[side_of(contract.role_of(request.proposed_by))]
    number = request.number
    return build_propose_changes_modal(
        ctx,
        contract,
        replacing=Replacing(
            request=request,
            callback=ViewId.REVISE,
            title=f"Revise request #{number}",
            note=(
                f"*Revise change request #{number}.* It starts with what #{number} proposes; "
                f"when you send it, #{number} is withdrawn and the new request takes its place."
            ),
            answerer=side_speakers(contract, to),
            recipient=side_name(contract, to),
        ),
    )
