"""Draw the Teams app icons (no imaging library): ``python deploy/teams/make_icons.py``.

color.png: 192x192, a white database cylinder on the accent colour. outline.png: 32x32,
the same cylinder in white on a transparent background (what Teams requires).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
ACCENT = (0x4F, 0x6B, 0xED, 0xFF)
WHITE = (0xFF, 0xFF, 0xFF, 0xFF)
CLEAR = (0, 0, 0, 0)

Pixel = tuple[int, int, int, int]


def png(width: int, height: int, pixel: Callable[[float, float], Pixel]) -> bytes:
    """An RGBA PNG; ``pixel(x, y)`` gets coordinates scaled to 0..1 (pixel centres)."""
    raw = b"".join(
        b"\x00" + b"".join(bytes(pixel((x + 0.5) / width, (y + 0.5) / height)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _in_ellipse(x: float, y: float, cy: float, rx: float = 0.3, ry: float = 0.09) -> bool:
    return ((x - 0.5) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1


def cylinder(x: float, y: float, *, stroke: float) -> str:
    """'fill', 'line' or '' for a database cylinder from y=0.2 to y=0.8."""
    top, bottom, rx, ry = 0.25, 0.75, 0.3, 0.09
    body = abs(x - 0.5) <= rx and top <= y <= bottom
    inside = body or _in_ellipse(x, y, top) or _in_ellipse(x, y, bottom)
    if not inside:
        return ""
    inner_rx, inner_ry = rx - stroke, ry - stroke
    on_edge = abs(x - 0.5) >= inner_rx or _ring(x, y, top, inner_rx, inner_ry) or y >= bottom
    for band in (top, (top + bottom) / 2, bottom):
        if _ring(x, y, band, inner_rx, inner_ry) and y >= band - 0.001:
            on_edge = True
    if _in_ellipse(x, y, top) and not _in_ellipse(x, y, top, inner_rx, inner_ry):
        on_edge = True
    return "line" if on_edge else "fill"


def _ring(x: float, y: float, cy: float, inner_rx: float, inner_ry: float) -> bool:
    return _in_ellipse(x, y, cy) and not _in_ellipse(x, y, cy, inner_rx, inner_ry)


def color(x: float, y: float) -> Pixel:
    part = cylinder(x, y, stroke=0.03)
    if part == "line":
        return ACCENT
    return WHITE if part == "fill" else ACCENT


def outline(x: float, y: float) -> Pixel:
    return WHITE if cylinder(x, y, stroke=0.07) == "line" else CLEAR


def main() -> None:
    (HERE / "color.png").write_bytes(png(192, 192, color))
    (HERE / "outline.png").write_bytes(png(32, 32, outline))


if __name__ == "__main__":
    main()
