"""`milestone-bot export --format csv`: the ledger and the milestones for an accountant.

One table a spreadsheet opens as is: a header row, then one row per money movement
(`record` = `ledger`) and one row per milestone (`record` = `milestone`), contract by
contract. Filter on `record` to see one or the other. The columns (README) are
`CSV_COLUMNS`; a column that does not apply to a row is empty.

Made from the JSON export (domain.export), so both always say the same thing. Amounts
are plain major units of the row's currency (`1500.00`, `1500` for JPY): no symbol, no
thousands separator, always positive (`kind` says which way the money went). Instants
are UTC as `YYYY-MM-DD HH:MM:SS`, which spreadsheets read as a date and time. Text a
spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`) gets a leading
apostrophe, as spreadsheets themselves do.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, TextIO

from domain.money import to_major_str

CSV_COLUMNS = (
    "record",
    "date",
    "contract_id",
    "contract_title",
    "milestone_number",
    "milestone_title",
    "kind",
    "amount",
    "currency",
    "actor",
    "status",
    "due_date",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_csv(export: Mapping[str, Any], out: TextIO) -> None:
    """Write the JSON export `export` (domain.export.export_contracts) as CSV to `out`."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(export))


def csv_rows(export: Mapping[str, Any]) -> Iterator[list[str]]:
    """The rows after the header: each contract's ledger (in order), then its milestones."""
    for contract in export["contracts"]:
        currency = str(contract["currency"])
        titles = {m["number"]: m["title"] for m in contract["milestones"]}
        common = [str(contract["id"]), _text(contract["title"])]
        for entry in contract["ledger"]:
            number = entry.get("milestone_number")
            yield [
                "ledger",
                _instant(entry["at"]),
                *common,
                "" if number is None else str(number),
                _text(titles.get(number, "")),
                str(entry["kind"]),
                to_major_str(abs(int(entry["amount_minor"])), currency),
                currency,
                _text(entry.get("actor") or ""),
                "",
                "",
            ]
        for milestone in contract["milestones"]:
            yield [
                "milestone",
                _instant(milestone.get("released_at") or milestone.get("funded_at")),
                *common,
                str(milestone["number"]),
                _text(milestone["title"]),
                "",
                to_major_str(int(milestone["amount_minor"]), currency),
                currency,
                "",
                str(milestone["status"]),
                str(milestone["due_date"]),
            ]


def _instant(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: Any) -> str:
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
