"""The forms behind *Suggest changes* and *Revise*: the propose-changes form, prefilled
with what the request proposes, read back into the same changes."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from slack_sdk.models.views import View

from domain.model import ChangeKind, ContractStatus, MilestoneStatus
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone
from handlers.blocks import build_propose_changes_modal, read_propose_changes
from handlers.blocks import fields as F
from handlers.blocks.counter import build_counter_modal, build_revise_modal
from handlers.ids import View as ViewId
from handlers.payloads import ModalContext
from sandbox.emulator.blocks import build_state_values

from .support import CLIENT, all_text, change, check_view, contract, milestone, request

CTX = ModalContext(channel_id="C0001", contract_id=7, request_id=51)


def _inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def _values(view: View, **inputs: Any) -> dict[str, dict[str, Any]]:
    return build_state_values(view.to_dict()["blocks"], inputs=inputs)


def _active(*, agency: bool = False) -> Any:
    return contract(
        status=ContractStatus.ACTIVE,
        agency=agency,
        milestones=[
            milestone(1, title="Design", status=MilestoneStatus.FUNDED),
            milestone(2, title="Build", amount_minor=250_000, description="Shop"),
            milestone(3, title="Launch", amount_minor=50_000),
        ],
    )


ASKED = [
    change(ChangeKind.EDIT, 2, {"amount_minor": 300_000, "description": "Shop and blog"}),
    change(ChangeKind.DELETE, 3, {}, position=1),
    change(
        ChangeKind.ADD,
        None,
        {"title": "Extra page", "amount_minor": 70_000, "due_date": "2027-01-15"},
        position=2,
    ),
]


def test_suggest_changes_opens_the_form_prefilled_with_the_request() -> None:
    c = _active()
    r = request(changes=ASKED)

    view = build_counter_modal(CTX, c, r)
    raw = check_view(view)

    assert raw["callback_id"] == ViewId.COUNTER
    assert raw["title"]["text"] == "Counter-offer to #1" and raw["submit"]["text"] == "Send"
    assert json.loads(raw["private_metadata"]) == {"ch": "C0001", "c": 7, "r": 51}
    inputs = _inputs(raw)
    assert inputs["m2_amount"]["element"]["initial_value"] == "3000.00"
    assert inputs["m2_description"]["element"]["initial_value"] == "Shop and blog"
    assert inputs["m2_title"]["element"]["initial_value"] == "Build"
    assert [o["value"] for o in inputs["m3_delete"]["element"]["initial_options"]] == ["delete"]
    assert inputs[F.NEW_TITLE]["element"]["initial_value"] == "Extra page"
    assert inputs[F.NEW_DUE_DATE]["element"]["initial_date"] == "2027-01-15"
    assert inputs[F.MESSAGE]["label"]["text"] == "Message to the freelancer"
    text = all_text(raw["blocks"])
    assert "*Your counter-offer to change request #1* from <@UFREELA01>" in text
    assert "<@UFREELA01> accepts or declines the request as a whole." in text


def test_the_untouched_prefilled_form_reads_back_as_the_request() -> None:
    c = _active()
    view = build_counter_modal(CTX, c, request(changes=ASKED))

    form = read_propose_changes(_values(view), c)

    assert form == {
        "changes": [
            MilestoneEdit(2, amount="3000.00", description="Shop and blog"),
            MilestoneDeletion(3),
            NewMilestone("Extra page", "700.00", date(2027, 1, 15), ""),
        ],
        "message": "",
        "errors": {},
    }


def test_a_counter_adjusts_what_the_request_asked() -> None:
    c = _active()
    view = build_counter_modal(CTX, c, request(changes=ASKED))

    form = read_propose_changes(
        _values(
            view, m2_amount="2750", m3_delete=[], new_title="", new_amount="", new_due_date=None
        ),
        c,
    )

    assert form["changes"] == [MilestoneEdit(2, amount="2750", description="Shop and blog")]


def test_revise_opens_the_form_for_the_proposer_to_send_in_its_place() -> None:
    c = _active()
    view = build_revise_modal(CTX, c, request(changes=ASKED))
    raw = check_view(view)

    assert raw["callback_id"] == ViewId.REVISE
    assert raw["title"]["text"] == "Revise request #1"
    assert _inputs(raw)[F.MESSAGE]["label"]["text"] == "Message to the client"
    assert "<@UCLIENT01> accepts or declines the request as a whole." in all_text(raw["blocks"])


def test_the_clients_counter_is_revised_for_the_agency_to_answer() -> None:
    c = _active(agency=True)
    r = request(2, changes=ASKED[:1], proposed_by=CLIENT, counter_of=1)

    raw = check_view(build_revise_modal(CTX, c, r))

    assert _inputs(raw)[F.MESSAGE]["label"]["text"] == "Message to the agency"
    assert "an agency manager (<@UMANAGE01> or <@UMANAGE02>) accepts or declines" in all_text(
        raw["blocks"]
    )


def test_titles_fit_for_big_request_numbers() -> None:
    c = _active()
    r = request(123456, changes=ASKED)
    assert len(check_view(build_counter_modal(CTX, c, r))["title"]["text"]) <= 24
    assert len(check_view(build_revise_modal(CTX, c, r))["title"]["text"]) <= 24


def test_every_milestones_description_can_be_edited_and_cleared() -> None:
    c = _active()
    view = build_propose_changes_modal(CTX, c)
    assert F.propose_block(3, "description") in _inputs(check_view(view))

    form = read_propose_changes(
        _values(view, m2_description="", m3_description="Go live in two steps"), c
    )

    assert form["changes"] == [
        MilestoneEdit(2, description=""),
        MilestoneEdit(3, description="Go live in two steps"),
    ]


def test_a_request_adding_several_milestones_gets_a_slot_for_each() -> None:
    c = _active()
    adds = [
        change(
            ChangeKind.ADD,
            None,
            {"title": f"Page {n}", "amount_minor": 10_000 * n, "due_date": "2027-01-15"},
            position=n,
        )
        for n in (1, 2, 3)
    ]
    view = build_counter_modal(CTX, c, request(changes=adds))
    inputs = _inputs(check_view(view))
    assert inputs["new3_title"]["element"]["initial_value"] == "Page 3"

    form = read_propose_changes(_values(view, new2_title=""), c)

    assert [getattr(ch, "title", None) for ch in form["changes"]] == ["Page 1", "Page 3"]
    assert set(form["errors"]) == {"new2_title"}


def test_the_milestones_a_request_changes_are_shown_even_far_down_the_list() -> None:
    milestones = [milestone(n) for n in range(1, 41)]
    c = contract(status=ContractStatus.ACTIVE, milestones=milestones)
    r = request(changes=[change(ChangeKind.EDIT, 33, {"title": "Thirty-three"})])

    raw = check_view(build_counter_modal(CTX, c, r))

    inputs = _inputs(raw)
    assert inputs["m33_title"]["element"]["initial_value"] == "Thirty-three"
    assert "m1_title" in inputs and "m15_title" not in inputs
    assert len(raw["blocks"]) <= 100
    assert "the milestones this request changes, then the first others" in all_text(raw["blocks"])
