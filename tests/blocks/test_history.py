from __future__ import annotations

from datetime import timedelta

from domain.model import ContractStatus
from handlers.blocks import build_history

from .support import NOW, all_text, check_message, contract, event, milestone


def test_history_lists_every_event_oldest_first_with_who_when_and_what() -> None:
    c = contract(status=ContractStatus.ACTIVE, milestones=[milestone(1, title="Design")])
    events = [
        event("contract_created", title="Website redesign", currency="USD", event_id=1),
        event(
            "milestone_edited",
            event_id=2,
            milestone_number=1,
            request_number=2,
            before={"amount_minor": 150_000, "description": "old & short"},
            after={"amount_minor": 180_000, "description": "new <b>"},
            at=NOW + timedelta(hours=1),
        ),
        event("work_submitted", actor="UFREELA01", milestone_number=1, note="done", event_id=3),
        event("agreement_cleared", actor="system", event_id=4),
    ]
    message = build_history(c, events, now=NOW)
    blocks = check_message(message)
    assert blocks[0]["text"]["text"] == (
        ":scroll: *History* · contract 7 · *Website redesign*\n4 events, oldest first"
    )
    lines = blocks[1]["text"]["text"].split("\n")
    assert lines[0] == (
        "<!date^1793613600^{date_short} {time}|Mon 2 Nov 2026 10:00 UTC>  :page_facing_up: "
        "<@UCLIENT01> created contract 7 *Website redesign* in USD."
    )
    assert lines[1].startswith("<!date^1793617200^{date_short} {time}|Mon 2 Nov 2026 11:00 UTC>")
    assert lines[1].endswith(
        "<@UCLIENT01> edited milestone 1 *Design* (change request #2): Amount: ~$1,500.00~ → "
        "*$1,800.00*; Description: ~old &amp; short~ → *new &lt;b&gt;*."
    )
    assert "<@UFREELA01> submitted work for milestone 1 *Design*." in lines[2]
    assert lines[3] == ">done"
    assert "earlier agreement to the terms was cleared" in lines[4]
    assert message.text == "History of contract 7: 4 events."


def test_long_history_keeps_the_latest_events_and_says_so() -> None:
    c = contract(milestones=[milestone(1)])
    events = [
        event(
            "milestone_deleted",
            event_id=n,
            milestone_number=1,
            before={"title": f"T{n}", "amount_minor": 100},
            message=f"{n} " + "&" * 1990,
        )
        for n in range(1, 3001)
    ]
    message = build_history(c, events, now=NOW, total=5000)
    blocks = check_message(message)
    assert len(blocks) <= 50
    head = blocks[0]["text"]["text"]
    assert "showing the latest " in head and " of 5,000 events" in head
    shown = int(head.split("showing the latest ")[1].split(" ")[0].replace(",", ""))
    assert 0 < shown < 3000
    text = all_text(blocks)
    assert "~T3000 · $1.00~" in text  # the newest is kept
    assert "~T1 · $1.00~" not in text
    assert sum(len(b.get("text", {}).get("text", "")) for b in blocks) <= 45_000


def test_empty_history() -> None:
    blocks = check_message(build_history(contract(), [], now=NOW))
    assert "Nothing has happened yet" in all_text(blocks)
