"""The Teams app package: manifest fields Teams checks on upload, and the icons' sizes."""

from __future__ import annotations

import importlib.util
import json
import struct
import zlib
from pathlib import Path

TEAMS = Path(__file__).parents[1] / "deploy" / "teams"


def _png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGBA pixels of one of our PNGs (8-bit RGBA, filter 0 rows)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color_type = struct.unpack(">IIBB", data[16:26])
    assert (depth, color_type) == (8, 6)
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 4 * width
    pixels = [raw[r * stride + 1 + 4 * c : r * stride + 5 + 4 * c] for r in range(height) for c in range(width)]
    assert all(raw[r * stride] == 0 for r in range(height))
    return width, height, pixels


def test_manifest_declares_the_bot_in_every_scope() -> None:
    manifest = json.loads((TEAMS / "manifest.json").read_text())
    assert manifest["manifestVersion"] == "1.22" and manifest["$schema"].endswith("/v1.22/MicrosoftTeams.schema.json")
    (bot,) = manifest["bots"]
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"} and bot["botId"] == "${{BOT_ID}}"
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert len(manifest["name"]["short"]) <= 30 and len(manifest["description"]["short"]) <= 80
    assert len(manifest["description"]["full"]) <= 4000


def test_icons_have_the_sizes_teams_requires() -> None:
    width, height, pixels = _png(TEAMS / "color.png")
    assert (width, height) == (192, 192) and len(set(pixels)) > 1
    width, height, pixels = _png(TEAMS / "outline.png")
    assert (width, height) == (32, 32)
    assert set(pixels) == {b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"}  # white on transparent only


def test_committed_icons_are_what_the_script_draws(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_icons", TEAMS / "make_icons.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.png(192, 192, module.color) == (TEAMS / "color.png").read_bytes()
    assert module.png(32, 32, module.outline) == (TEAMS / "outline.png").read_bytes()
