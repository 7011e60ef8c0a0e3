"""Charts of a preview: a declarative spec chosen from the result's shape, drawn on the server.

A result with one label column and one numeric column is a bar chart; one date/time column
and one numeric column is a line chart; anything else gets no chart (and no Chart button).
The spec holds only data (kind, axis names, points), and one fixed matplotlib routine draws
it: no code a model wrote is ever run (Vanna's ``exec()`` of generated plotting code was
CVE-2024-5565). Rendering uses the Agg canvas directly (no pyplot, no global backend), is
deterministic for the same spec, and keeps the image small enough for a Teams card.

>>> from bot.core.types import PreviewReply
>>> spec = chart_spec(PreviewReply(ok=True, text="", columns=("dept", "n"), rows=(("A", 2), ("B", 5))))
>>> spec.kind, spec.x, spec.y, spec.points
('bar', 'dept', 'n', (('A', 2.0), ('B', 5.0)))
>>> chart_spec(PreviewReply(ok=True, text="", columns=("name",), rows=(("A",), ("B",)))) is None
True
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import io
import math
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.core.text import cut
from bot.core.types import PreviewReply
from chat2sql import messages

MAX_BAR_POINTS = 25  # more bars than this are unreadable in a chat pane
MAX_LINE_POINTS = 500
MAX_LABEL_CHARS = 24
MIN_POINTS = 2
WIDTH_PX, HEIGHT_PX, DPI = 800, 400, 100
# Teams carries the image inside the card as a data: URI (base64, 4/3 of the bytes); the
# card must stay under cards.MAX_CARD_BYTES (40 KB, far under Teams' limit).
TEAMS_MAX_PNG_BYTES = 24_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Tried in turn when the image must fit a byte budget: (width px, height px, dpi, palette
# colours). A chart has few colours: a palette PNG is a fraction of an RGBA one's size.
_SIZES = ((800, 400, 100, 64), (600, 300, 80, 32), (480, 240, 64, 8))

_ISO = re.compile(r"^\d{4}-\d{2}(-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_render_lock = threading.Lock()  # matplotlib's font cache and text layout are not thread-safe

Point = tuple[str | dt.datetime, float]


@dataclass(frozen=True, kw_only=True)
class ChartSpec:
    """What to draw; everything in it is data taken from the preview."""

    kind: Literal["bar", "line"]
    x: str
    y: str
    title: str
    points: tuple[Point, ...]
    note: str = ""  # what was left out ("first 25 of 80 rows")


@dataclass(frozen=True, kw_only=True)
class ChartReply:
    ok: bool
    text: str  # the chart's title, or why there is none
    spec: ChartSpec | None = None
    png: bytes = b""


def chart_spec(preview: PreviewReply) -> ChartSpec | None:
    """The chart for a preview, or None when its shape is not one of the two we draw."""
    if not preview.ok or len(preview.columns) != 2 or len(preview.rows) < MIN_POINTS:
        return None
    kinds = [_column_kind([row[i] for row in preview.rows]) for i in range(2)]
    if sorted(kinds) == ["label", "number"]:
        kind: Literal["bar", "line"] = "bar"
    elif sorted(kinds) == ["number", "time"]:
        kind = "line"
    else:
        return None
    xi = 0 if kinds[0] != "number" else 1
    yi = 1 - xi
    pairs = [(row[xi], row[yi]) for row in preview.rows if row[yi] is not None]
    if kind == "line":
        timed = sorted((t, _number(v)) for x, v in pairs if (t := _to_datetime(x)) is not None)
        points: list[Point] = list(timed[:MAX_LINE_POINTS])
        total = len(timed)
    else:
        points = [(_label(x), _number(v)) for x, v in pairs[:MAX_BAR_POINTS]]
        total = len(pairs)
    if len(points) < MIN_POINTS:
        return None
    x, y = preview.columns[xi], preview.columns[yi]
    return ChartSpec(
        kind=kind,
        x=x,
        y=y,
        title=f"{y} by {x}",
        points=tuple(points),
        note=messages.chart_note(len(points), total, more_rows=preview.truncated),
    )


def chartable(preview: PreviewReply) -> bool:
    return chart_spec(preview) is not None


def render_png(spec: ChartSpec, *, max_bytes: int | None = None) -> bytes | None:
    """The chart as PNG bytes; None when no size tried fits ``max_bytes``."""
    sizes = _SIZES if max_bytes is not None else _SIZES[:1]
    for width, height, dpi, colors in sizes:
        png = _draw(spec, width=width, height=height, dpi=dpi, colors=colors)
        if max_bytes is None or len(png) <= max_bytes:
            return png
    return None


async def chart(preview: PreviewReply, *, max_bytes: int | None = None) -> ChartReply:
    """An answer's preview drawn, if it has a chart's shape (``Assistant.chart`` runs the preview)."""
    if not preview.ok:
        return ChartReply(ok=False, text=preview.text)
    spec = await asyncio.to_thread(chart_spec, preview)
    if spec is None:
        return ChartReply(ok=False, text=messages.CHART_UNSUITABLE)
    png = await asyncio.to_thread(render_png, spec, max_bytes=max_bytes)
    if png is None:
        return ChartReply(ok=False, text=messages.CHART_TOO_LARGE, spec=spec)
    return ChartReply(ok=True, text=_caption(spec), spec=spec, png=png)


def _caption(spec: ChartSpec) -> str:
    return f"{spec.title} ({spec.note})" if spec.note else spec.title


# --- column kinds -------------------------------------------------------------------------------


def _column_kind(values: Sequence[Any]) -> Literal["number", "time", "label", "empty"]:
    present = [v for v in values if v is not None]
    if not present:
        return "empty"
    if all(_is_number(v) for v in present):
        return "number"
    if all(_to_datetime(v) is not None for v in present):
        return "time"
    return "label"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        return False
    return math.isfinite(float(value))


def _number(value: Any) -> float:
    return float(value)


def _to_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str) and _ISO.match(value.strip()):
        text = value.strip()
        try:
            parsed = dt.datetime.fromisoformat(text + "-01" if len(text) == 7 else text)
        except ValueError:
            return None
        return parsed.replace(tzinfo=None) if parsed.tzinfo else parsed
    return None


def _label(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    text = " ".join(text.split())
    return cut(text, MAX_LABEL_CHARS)


# --- drawing ------------------------------------------------------------------------------------


def _plain(text: str) -> str:
    """Text shown as typed: ``$`` would start matplotlib's mathtext."""
    return text.replace("$", r"\$")


def _draw(spec: ChartSpec, *, width: int, height: int, dpi: int, colors: int) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    values = [p[1] for p in spec.points]
    number = FuncFormatter(lambda v, _: _format_number(v))
    with _render_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a glyph missing from the bundled font is drawn as a box
        fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        labels = [str(p[0]) for p in spec.points]
        horizontal = spec.kind == "bar" and (len(labels) > 8 or max(len(label) for label in labels) > 10)
        if spec.kind == "line":
            times: list[Any] = [p[0] for p in spec.points]
            ax.plot(times, values, color="#1f77b4", linewidth=1.6, marker="o" if len(times) <= 40 else None)
            locator = AutoDateLocator()  # type: ignore[no-untyped-call]
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
            ax.yaxis.set_major_formatter(number)
            ax.set_xlabel(_plain(spec.x))
            ax.set_ylabel(_plain(spec.y))
        elif horizontal:
            positions = list(range(len(labels)))
            ax.barh(positions, values, color="#1f77b4")
            ax.set_yticks(positions, [_plain(label) for label in labels])
            ax.invert_yaxis()  # the query's first row on top
            ax.xaxis.set_major_formatter(number)
            ax.set_xlabel(_plain(spec.y))
            ax.set_ylabel(_plain(spec.x))
        else:
            positions = list(range(len(labels)))
            ax.bar(positions, values, color="#1f77b4")
            ax.set_xticks(positions, [_plain(label) for label in labels])
            ax.yaxis.set_major_formatter(number)
            ax.set_xlabel(_plain(spec.x))
            ax.set_ylabel(_plain(spec.y))
        ax.grid(axis="x" if horizontal else "y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_title(_plain(_caption(spec)), fontsize=11)
        raw = io.BytesIO()
        fig.savefig(raw, format="png", dpi=dpi, metadata={"Software": None})
    return _palette(raw.getvalue(), colors)


def _palette(png: bytes, colors: int) -> bytes:
    """Re-encode with a small palette: the same picture at a fraction of the bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        small = image.convert("RGB").quantize(colors=colors, dither=Image.Dither.NONE)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _format_number(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.1f}M".replace(".0M", "M")
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}"
