"""A result's values as an analyst reads them, the same in the console, Slack and Teams;
the CSV export keeps every digit."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest

from bot.cells import cell_text, format_table, is_identifier_column
from bot.core.assistant import PreviewReply
from bot.slack import blocks
from bot.teams import cards


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (8963.049999999988, "8,963.05"),
        (0.000123456, "0.000123"),
        (1234567.891, "1,234,567.89"),
        (12.5, "12.50"),
        (3.0, "3"),
        (-1234.5, "-1,234.50"),
        (0.1 + 0.2, "0.3"),
        (0.0, "0"),
        (-0.0, "0"),
        (1.23e-7, "1.23e-07"),
        (2.5e18, "2.5e+18"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (Decimal("8963.049999999988"), "8,963.05"),
        (Decimal("2.675"), "2.68"),  # half up, as on paper (half even would say 2.67… for 2.665)
        (Decimal("2.665"), "2.67"),
        (Decimal("0.000123456"), "0.000123"),
        (Decimal("100.00"), "100"),
        (Decimal("12345"), "12,345"),  # PostgreSQL's SUM() of integers
        (Decimal("2024"), "2024"),
        (Decimal("NaN"), "NaN"),
        (2024, "2024"),
        (9999, "9999"),
        (10_000, "10,000"),
        (-1_234_567, "-1,234,567"),
        (0, "0"),
        (None, "NULL"),
        (True, "True"),
        (False, "False"),
        ("1234567.891", "1234567.891"),
        ("", ""),
    ],
)
def test_cell_text(value: object, shown: str) -> None:
    assert cell_text(value) == shown


@pytest.mark.parametrize(
    "column", ["id", "order_id", "customerId", "CustomerID", "fiscal_year", "YEAR", "zip", "phone_number", "invoice_no"]
)
def test_identifier_columns_keep_their_integers_as_written(column: str) -> None:
    assert is_identifier_column(column)
    assert cell_text(100234, column=column) == "100234"
    assert cell_text(Decimal("100234"), column=column) == "100234"
    assert cell_text(8963.049999999988, column=column) == "8,963.05"  # a fraction is a quantity anyway


@pytest.mark.parametrize("column", ["revenue", "paid", "num_orders", "count(*)", "identity_count", "Total Sales", ""])
def test_quantity_columns_group_their_integers(column: str) -> None:
    assert not is_identifier_column(column)
    assert cell_text(100234, column=column) == "100,234"


def _preview(columns: tuple[str, ...], rows: tuple[tuple[Any, ...], ...]) -> PreviewReply:
    return PreviewReply(ok=True, text="", columns=columns, rows=rows, elapsed_ms=3)


PREVIEW = _preview(
    ("product", "revenue", "order_id", "units", "hired"),
    (
        ("Trekking Poles", 8963.049999999988, 100234, 1234567, 2024),
        ("Hiking Socks", Decimal("0.000123456"), 100235, None, 2019),
    ),
)


def test_console_table_formats_and_right_aligns_number_columns() -> None:
    assert format_table(PREVIEW.columns, PREVIEW.rows).splitlines() == [
        "product        |  revenue | order_id |     units | hired",
        "---------------+----------+----------+-----------+------",
        "Trekking Poles | 8,963.05 |   100234 | 1,234,567 |  2024",
        "Hiking Socks   | 0.000123 |   100235 |      NULL |  2019",
    ]


def test_console_table_text_columns_stay_left_aligned_and_cut() -> None:
    table = format_table(("name", "mixed"), [("a" * 50, 1), ("b", "x")], max_width=10)
    assert table.splitlines()[2:] == ["aaaaaaaaa… | 1    ", "b          | x    "]


def test_slack_table_reads_like_the_console_and_its_csv_keeps_full_precision() -> None:
    content, cut = blocks.preview_blocks(PREVIEW)
    table = content[0]["text"]["text"]
    assert not cut and table == f"```\n{format_table(PREVIEW.columns, PREVIEW.rows)}\n```"
    assert "8,963.05" in table and "8963.049999999988" not in table
    rows = list(csv.reader(io.StringIO(blocks.preview_csv(PREVIEW))))
    assert rows == [
        ["product", "revenue", "order_id", "units", "hired"],
        ["Trekking Poles", "8963.049999999988", "100234", "1234567", "2024"],
        ["Hiking Socks", "0.000123456", "100235", "", "2019"],
    ]


def test_teams_table_cells_use_the_same_formatter() -> None:
    card = cards.preview_card(PREVIEW)
    table = card["body"][0]
    texts = [[cell["items"][0]["text"] for cell in row["cells"]] for row in table["rows"]]
    assert texts == [
        ["product", "revenue", "order_id", "units", "hired"],
        ["Trekking Poles", "8,963.05", "100234", "1,234,567", "2024"],
        ["Hiking Socks", "0.000123", "100235", "NULL", "2019"],
    ]


def test_teams_cells_are_still_cut_to_their_limit() -> None:
    card = cards.preview_card(_preview(("note",), (("x" * 500,),)))
    text = card["body"][0]["rows"][1]["cells"][0]["items"][0]["text"]
    assert len(text) == cards.MAX_CELL_CHARS and text.endswith("…")
