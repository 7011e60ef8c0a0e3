"""Charts: which previews get one (and which kind), the PNG drawn from the spec (valid,
deterministic, small), and the chart of an answer through the core's preview."""

from __future__ import annotations

import datetime as dt
import io
import struct
from decimal import Decimal

import pytest

from bot.core import charts
from bot.core.assistant import Assistant, PreviewReply
from bot.core.charts import ChartSpec, chart_spec, chartable, render_png
from chat2sql import messages
from chat2sql.settings import Settings
from tests.support.assistant import ALICE, make_assistant
from tests.support.clients import ScriptedClient


def _preview(columns: tuple[str, ...], rows: list[tuple[object, ...]], *, truncated: bool = False) -> PreviewReply:
    return PreviewReply(ok=True, text="", columns=columns, rows=tuple(rows), truncated=truncated, elapsed_ms=1.0)


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == charts.PNG_SIGNATURE and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


# --- choosing a chart -------------------------------------------------------------------------


def test_category_and_number_is_a_bar_chart_in_query_order() -> None:
    spec = chart_spec(
        _preview(("department", "payroll"), [("Sales", Decimal("165000.50")), ("Eng", 300000), (None, 5)])
    )
    assert spec is not None and spec.kind == "bar" and (spec.x, spec.y) == ("department", "payroll")
    assert (
        spec.points == (("Sales", 165000.5), ("Eng", 300000.0), ("NULL", 5.0)) and spec.title == "payroll by department"
    )
    flipped = chart_spec(_preview(("n", "name"), [(3, "a"), (4, "b")]))
    assert flipped is not None and (flipped.x, flipped.y) == ("name", "n")


def test_dates_and_number_is_a_sorted_line_chart() -> None:
    rows = [("2026-03-01", 3), ("2026-01-01", 1), ("2026-02-01", None), ("2026-02-01", 2)]
    spec = chart_spec(_preview(("month", "orders"), rows))
    assert spec is not None and spec.kind == "line"
    assert [p[0] for p in spec.points] == [dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1), dt.datetime(2026, 3, 1)]
    for values in (
        [dt.date(2025, 1, 1), dt.date(2025, 2, 1)],
        ["2025-01", "2025-02"],
        ["2025-01-01 10:00:00", "2025-01-01T11:00:00Z"],
    ):
        assert chart_spec(_preview(("t", "v"), [(values[0], 1), (values[1], 2)])).kind == "line"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("columns", "rows"),
    [
        (("name",), [("a",), ("b",)]),  # one column
        (("a", "b", "c"), [("x", 1, 2), ("y", 3, 4)]),  # three columns
        (("name", "email"), [("a", "x@y"), ("b", "z@y")]),  # no number
        (("id", "salary"), [(1, 10), (2, 20)]),  # two numbers
        (("name", "n"), [("a", 1)]),  # one row
        (("name", "n"), [("a", None), ("b", None)]),  # no values
        (("name", "flag"), [("a", True), ("b", False)]),  # booleans are not numbers
        (("name", "n"), [("a", float("nan")), ("b", 1.0)]),
        (("name", "n"), [("a", "1"), ("b", "2")]),  # numbers as text are labels
    ],
)
def test_no_chart_for_other_shapes(columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    assert chart_spec(_preview(columns, rows)) is None and not chartable(_preview(columns, rows))


def test_failed_preview_has_no_chart() -> None:
    assert chart_spec(PreviewReply(ok=False, text="boom")) is None


def test_points_are_capped_and_the_cut_is_said() -> None:
    bars = chart_spec(_preview(("name", "n"), [(f"customer {i}", i) for i in range(80)], truncated=True))
    assert bars is not None and len(bars.points) == charts.MAX_BAR_POINTS
    assert bars.note == messages.chart_note(charts.MAX_BAR_POINTS, 80, more_rows=True)
    assert "first 25 of 80 rows" in bars.note and "row limit" in bars.note
    day = dt.date(2020, 1, 1)
    line = chart_spec(_preview(("day", "n"), [(day + dt.timedelta(days=i), i) for i in range(900)]))
    assert line is not None and len(line.points) == charts.MAX_LINE_POINTS
    long = chart_spec(_preview(("name", "n"), [("x" * 100, 1), ("y", 2)]))
    assert long is not None and len(str(long.points[0][0])) == charts.MAX_LABEL_CHARS


# --- drawing ----------------------------------------------------------------------------------


SPECS = {
    "bar": ChartSpec(kind="bar", x="dept", y="n", title="n by dept", points=(("A", 1.0), ("B", 2.5), ("C", 0.0))),
    "horizontal": ChartSpec(
        kind="bar",
        x="$name",
        y="total $",
        title="total $ by $name",
        points=tuple((f"customer number {i}", i * 1e6) for i in range(25)),
    ),
    "line": ChartSpec(
        kind="line",
        x="day",
        y="orders",
        title="orders by day",
        points=tuple((dt.datetime(2026, 1, 1) + dt.timedelta(days=i), float(i % 7)) for i in range(120)),
        note="first 120 of 130 rows",
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_render_is_a_small_deterministic_png(name: str) -> None:
    png = render_png(SPECS[name])
    assert png is not None and _png_size(png) == (charts.WIDTH_PX, charts.HEIGHT_PX)
    assert len(png) < 60_000
    assert render_png(SPECS[name]) == png  # same spec, same bytes
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    small = render_png(SPECS[name], max_bytes=charts.TEAMS_MAX_PNG_BYTES)
    assert small is not None and len(small) <= charts.TEAMS_MAX_PNG_BYTES


def test_a_dense_chart_steps_down_to_fit_a_budget_or_gives_up() -> None:
    zigzag = ChartSpec(
        kind="line", x="t", y="v", title="v by t",
        points=tuple((dt.datetime(2026, 1, 1) + dt.timedelta(days=i), float(i % 7)) for i in range(400)),
    )  # fmt: skip
    full = render_png(zigzag)
    assert full is not None and len(full) > charts.TEAMS_MAX_PNG_BYTES
    fitted = render_png(zigzag, max_bytes=charts.TEAMS_MAX_PNG_BYTES)
    assert fitted is not None and len(fitted) <= charts.TEAMS_MAX_PNG_BYTES and _png_size(fitted)[0] < charts.WIDTH_PX
    assert render_png(zigzag, max_bytes=500) is None


# --- through the core -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_chart_of_an_answer(settings: Settings, sqlite_url: str) -> None:
    sql = "SELECT d.name, SUM(e.salary) AS payroll FROM employees e JOIN departments d ON e.department_id = d.id GROUP BY d.name ORDER BY payroll DESC"
    bot: Assistant = make_assistant(settings, ScriptedClient([sql, "SELECT name FROM employees"]))
    bot.registry.add("hr", sqlite_url, registered_by="t")
    reply = await bot.ask("payroll per department?", ALICE)
    assert reply.answer is not None
    drawn = await bot.chart(reply.answer.audit_id, ALICE)
    assert drawn.ok and drawn.spec is not None and drawn.spec.kind == "bar" and drawn.text == "payroll by name"
    assert [p[0] for p in drawn.spec.points] == ["Engineering", "Sales", "Support"]
    assert _png_size(drawn.png) == (charts.WIDTH_PX, charts.HEIGHT_PX)

    names = await bot.ask("who works here?", ALICE)
    assert names.answer is not None
    flat = await bot.chart(names.answer.audit_id, ALICE)
    assert not flat.ok and flat.text == messages.CHART_UNSUITABLE and flat.png == b""
    gone = await bot.chart(999_999, ALICE)
    assert not gone.ok and "no longer" in gone.text
    bot.store.revoke("hr", ALICE)
    refused = await bot.chart(reply.answer.audit_id, ALICE)
    assert not refused.ok and "not available in this channel" in refused.text
    assert len(bot._s.client.requests) == 2  # type: ignore[attr-defined]  # charts never ask the model
    await bot.close()
