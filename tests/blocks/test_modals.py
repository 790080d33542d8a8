from __future__ import annotations

import json
from datetime import date
from typing import Any

from slack_sdk.models.views import View

from domain.errors import (
    InvalidAmount,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    MilestoneLocked,
)
from domain.model import ChangeKind, ContractStatus, MilestoneStatus
from domain.services import MilestoneDeletion, MilestoneEdit, NewMilestone
from handlers.blocks import (
    build_add_milestone_modal,
    build_decline_modal,
    build_edit_milestone_modal,
    build_new_contract_modal,
    build_propose_changes_modal,
    build_request_changes_modal,
    new_contract_errors,
    read_add_milestone,
    read_decline,
    read_edit_milestone,
    read_new_contract,
    read_propose_changes,
    read_request_changes,
)
from handlers.blocks import fields as F
from handlers.ids import View as ViewId
from handlers.payloads import ModalContext
from sandbox.emulator.blocks import build_state_values

from .support import (
    CLIENT,
    FREELANCER,
    MANAGER,
    MEMBER,
    all_text,
    change,
    check_view,
    contract,
    milestone,
    request,
)

CTX = ModalContext(channel_id="C0001", contract_id=7)


def _inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def _values(view: View, **inputs: Any) -> dict[str, dict[str, Any]]:
    return build_state_values(view.to_dict()["blocks"], inputs=inputs)


def test_new_contract_modal_has_stable_ids_and_usd_preselected() -> None:
    view = build_new_contract_modal(CTX, client_id=CLIENT)
    raw = check_view(view)
    assert raw["type"] == "modal"
    assert raw["callback_id"] == ViewId.NEW_CONTRACT
    assert raw["title"]["text"] == "New contract"
    assert json.loads(raw["private_metadata"]) == {"ch": "C0001", "c": 7}
    inputs = _inputs(raw)
    assert list(inputs) == [
        F.TITLE,
        F.CLIENT,
        F.FREELANCER,
        F.AGENCY_NAME,
        F.MANAGERS,
        F.MEMBERS,
        F.CURRENCY,
    ]
    for block_id, block in inputs.items():
        assert block["element"]["action_id"] == block_id
    assert inputs[F.TITLE]["element"]["max_length"] == 200
    assert inputs[F.CLIENT]["element"] == {
        "type": "users_select",
        "action_id": "client",
        "initial_user": CLIENT,
        "placeholder": {"type": "plain_text", "text": "Pick the client", "emoji": True},
    }
    assert inputs[F.FREELANCER]["optional"] is True
    assert inputs[F.MANAGERS]["element"]["type"] == "multi_users_select"
    currency = inputs[F.CURRENCY]["element"]
    assert currency["initial_option"]["value"] == "USD"
    codes = [o["value"] for o in currency["options"]]
    assert {"USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "INR"} <= set(codes)
    assert len(codes) == len(set(codes)) <= 100


def test_new_contract_reads_back_and_checks_the_provider_side() -> None:
    view = build_new_contract_modal(CTX)
    form = read_new_contract(
        _values(view, title="  Site  ", client=CLIENT, freelancer=FREELANCER, currency="EUR")
    )
    assert form == {
        "title": "Site",
        "client_id": CLIENT,
        "freelancer_id": FREELANCER,
        "agency_name": None,
        "manager_ids": [],
        "member_ids": [],
        "currency": "EUR",
    }
    assert new_contract_errors(form) == {}
    agency = read_new_contract(
        _values(
            view,
            title="App",
            client=CLIENT,
            agency_name="Pixel & Co",
            managers=[MANAGER, MANAGER],
            members=[MEMBER],
        )
    )
    assert agency["agency_name"] == "Pixel & Co"
    assert agency["manager_ids"] == [MANAGER]
    assert agency["currency"] == "USD"
    assert new_contract_errors(agency) == {}
    neither = read_new_contract(_values(view, title="X", client=CLIENT))
    assert set(new_contract_errors(neither)) == {F.FREELANCER}
    both = read_new_contract(
        _values(view, title="X", client=CLIENT, freelancer=FREELANCER, agency_name="A")
    )
    assert new_contract_errors(both) == {F.FREELANCER: "Pick a freelancer or an agency, not both."}
    no_manager = read_new_contract(_values(view, title="X", client=CLIENT, agency_name="A"))
    assert new_contract_errors(no_manager) == {F.MANAGERS: "An agency needs at least one manager."}


def test_add_milestone_modal_names_the_currency_and_reads_back() -> None:
    c = contract(currency="JPY", milestones=[milestone(1)])
    view = build_add_milestone_modal(CTX, c)
    raw = check_view(view)
    assert raw["callback_id"] == ViewId.ADD_MILESTONE
    inputs = _inputs(raw)
    assert list(inputs) == [F.TITLE, F.AMOUNT, F.DUE_DATE, F.DESCRIPTION, F.MESSAGE]
    assert inputs[F.AMOUNT]["label"]["text"] == "Amount (JPY)"
    assert inputs[F.DUE_DATE]["element"]["type"] == "datepicker"
    assert inputs[F.DESCRIPTION]["element"]["multiline"] is True
    assert inputs[F.DESCRIPTION]["element"]["max_length"] == 2000
    assert inputs[F.MESSAGE]["optional"] is True
    form = read_add_milestone(
        _values(view, title="Wireframes", amount="150000", due_date="2026-12-01")
    )
    assert form == {
        "title": "Wireframes",
        "amount": "150000",
        "due_date": date(2026, 12, 1),
        "description": "",
        "message": "",
    }


def test_edit_modal_is_prefilled_and_returns_only_what_changed() -> None:
    m = milestone(2, title="Build", amount_minor=250_050, description="Shop")
    c = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1), m])
    view = build_edit_milestone_modal(CTX, c, m)
    raw = check_view(view)
    assert raw["callback_id"] == ViewId.EDIT_MILESTONE
    assert raw["title"]["text"] == "Edit milestone 2"
    inputs = _inputs(raw)
    assert inputs[F.TITLE]["element"]["initial_value"] == "Build"
    assert inputs[F.AMOUNT]["element"]["initial_value"] == "2500.50"
    assert inputs[F.DUE_DATE]["element"]["initial_date"] == "2026-12-01"
    assert inputs[F.DESCRIPTION]["element"]["initial_value"] == "Shop"
    untouched = read_edit_milestone(_values(view), m, currency="USD")
    assert untouched == {
        "title": None,
        "amount": None,
        "due_date": None,
        "description": None,
        "message": "",
    }
    same_amount = read_edit_milestone(_values(view, amount="$2,500.50"), m, currency="USD")
    assert same_amount["amount"] is None
    edited = read_edit_milestone(
        _values(view, amount="2600", due_date="2026-12-11", description="", message="why"),
        m,
        currency="USD",
    )
    assert edited == {
        "title": None,
        "amount": "2600",
        "due_date": date(2026, 12, 11),
        "description": "",
        "message": "why",
    }
    assert read_edit_milestone(_values(view, amount="abc"), m, currency="USD")["amount"] == "abc"


def test_propose_modal_edits_many_milestones_within_100_blocks() -> None:
    milestones = [
        milestone(n, status=MilestoneStatus.RELEASED if n <= 3 else MilestoneStatus.PENDING)
        for n in range(1, 51)
    ]
    milestones[3] = milestone(4, status=MilestoneStatus.FUNDED)
    c = contract(status=ContractStatus.ACTIVE, milestones=milestones)
    raw = check_view(build_propose_changes_modal(CTX, c))
    assert raw["callback_id"] == ViewId.PROPOSE
    inputs = _inputs(raw)
    assert F.propose_block(1, "title") not in inputs  # released: can't change
    assert F.propose_block(4, "amount") in inputs
    assert F.propose_block(4, "delete") not in inputs  # funded: can't be deleted
    assert F.propose_block(5, "delete") in inputs
    assert F.propose_block(18, "title") in inputs
    assert F.propose_block(19, "title") not in inputs
    assert "Showing milestones 4–18: 15 of the 47 milestones" in all_text(raw["blocks"])
    assert {F.NEW_TITLE, F.NEW_AMOUNT, F.NEW_DUE_DATE, F.NEW_DESCRIPTION, F.MESSAGE} <= set(inputs)


def test_propose_reads_only_real_changes() -> None:
    c = contract(
        status=ContractStatus.ACTIVE,
        milestones=[
            milestone(1, status=MilestoneStatus.FUNDED, title="Design"),
            milestone(2, title="Build"),
            milestone(3, title="Launch"),
        ],
    )
    view = build_propose_changes_modal(CTX, c)
    check_view(view)
    values = _values(
        view,
        m1_amount="1800",
        m2_title="Build v2",
        m2_due_date="2026-12-20",
        m3_delete=["delete"],
        m3_title="ignored, deleted anyway",
        new_title="Extra page",
        new_amount="700",
        new_due_date="2027-01-15",
        message="Client asked for more",
    )
    form = read_propose_changes(values, c)
    assert form == {
        "changes": [
            MilestoneEdit(1, amount="1800"),
            MilestoneEdit(2, title="Build v2", due_date=date(2026, 12, 20)),
            MilestoneDeletion(3),
            NewMilestone("Extra page", "700", date(2027, 1, 15), ""),
        ],
        "message": "Client asked for more",
        "errors": {},
    }
    nothing = read_propose_changes(_values(view), c)
    assert nothing["changes"] == [] and set(nothing["errors"]) == {F.NEW_TITLE}
    partial = read_propose_changes(_values(view, new_title="Extra"), c)
    assert set(partial["errors"]) == {F.NEW_AMOUNT, F.NEW_DUE_DATE}


def test_decline_and_request_changes_modals() -> None:
    r = request(3, changes=[change(ChangeKind.DELETE, 2, {}, {"title": "<b>"})])
    decline = build_decline_modal(ModalContext(channel_id="C1", contract_id=7, request_id=53), r)
    raw = check_view(decline)
    assert raw["callback_id"] == ViewId.DECLINE
    assert raw["title"]["text"] == "Decline request #3"
    assert raw["submit"]["text"] == "Decline"
    reason = _inputs(raw)[F.REASON]
    assert reason["optional"] is True and reason["element"]["max_length"] == 2000
    assert read_decline(_values(decline, reason=" too much ")) == {"reason": "too much"}
    assert read_decline(_values(decline)) == {"reason": ""}

    m = milestone(2, title="Build <x>", status=MilestoneStatus.SUBMITTED)
    changes = build_request_changes_modal(ModalContext(channel_id="C1", milestone_id=102), m)
    raw = check_view(changes)
    assert raw["callback_id"] == ViewId.REQUEST_CHANGES
    note = _inputs(raw)[F.NOTE]
    assert note["optional"] is False and note["element"]["max_length"] == 2000
    assert "Build &lt;x&gt;" in all_text(raw["blocks"])
    assert read_request_changes(_values(changes, note="Bigger logo")) == {"note": "Bigger logo"}


def test_modal_titles_fit_for_big_numbers() -> None:
    m = milestone(50)
    c = contract(milestones=[m])
    assert check_view(build_edit_milestone_modal(CTX, c, m))["title"]["text"] == "Edit milestone 50"
    r = request(12345, changes=[])
    assert len(check_view(build_decline_modal(CTX, r))["title"]["text"]) <= 24


def test_form_errors_point_at_the_input_the_refusal_names() -> None:
    not_a_number = InvalidAmount("That is not a number", field="amount_minor")
    assert F.form_errors(ViewId.ADD_MILESTONE, not_a_number) == {F.AMOUNT: "That is not a number"}
    past = InvalidInput("The due date 2020-01-01 is in the past.", field="due_date")
    assert F.form_errors(ViewId.ADD_MILESTONE, past) == {F.DUE_DATE: past.message}
    long = LimitExceeded("The description is 3,000 characters long", field="description")
    assert F.form_errors(ViewId.EDIT_MILESTONE, long) == {F.DESCRIPTION: long.message}
    locked = MilestoneLocked("It can only increase", field="amount_minor", milestone=4)
    assert F.form_errors(ViewId.PROPOSE, locked) == {"m4_amount": locked.message}
    deleted = InvalidTransition("Milestone 3 was deleted.", milestone=3)
    assert F.form_errors(ViewId.PROPOSE, deleted) == {"m3_title": deleted.message}
    too_large = InvalidAmount("too large", field="amount_minor")
    assert F.form_errors(ViewId.PROPOSE, too_large) == {F.NEW_AMOUNT: "too large"}
    assert F.form_errors(
        ViewId.ADD_MILESTONE, InvalidInput("bad", field="due_date"), present={F.TITLE}
    ) == {F.TITLE: "bad"}
    assert F.parse_propose_block("m12_due_date") == (12, "due_date")
    assert F.parse_propose_block("title") is None


def test_a_refusal_that_names_no_input_goes_to_the_forms_first_input_whatever_its_words() -> None:
    assert F.form_errors(ViewId.NEW_CONTRACT, InvalidInput("The amount and the due date")) == {
        F.TITLE: "The amount and the due date"
    }
    wording = MilestoneLocked("The amount of milestone 4 is funded")  # no field, no milestone
    assert F.form_errors(ViewId.PROPOSE, wording) == {F.NEW_TITLE: wording.message}


def test_direct_changes_by_the_client_only_offer_future_milestones() -> None:
    c = contract(
        status=ContractStatus.ACTIVE,
        milestones=[milestone(1, status=MilestoneStatus.FUNDED), milestone(2)],
    )
    raw = check_view(build_propose_changes_modal(CTX, c, direct=True))
    inputs = _inputs(raw)
    assert F.propose_block(1, "title") not in inputs
    assert F.propose_block(2, "title") in inputs
    assert raw["title"]["text"] == "Change milestones" and raw["submit"]["text"] == "Save"
    assert "Changes apply at once" in all_text(raw["blocks"])
