"""The Teams app package: ``chinadesk teams-package --app-id ID [--out FILE]`` and what goes in it."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pytest

from bot.cli import main
from bot.teams.package import APP_ID_PLACEHOLDER, teams_dir

APP_ID = "3f1a7c2e-5b8d-4e6f-9a0b-1c2d3e4f5a6b"


def png_info(data: bytes) -> tuple[int, int, int]:
    """(width, height, colour type) from a PNG's IHDR."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, _depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, colour


def rgba_pixels(data: bytes) -> list[tuple[int, int, int, int]]:
    """Decode an unfiltered 8-bit RGBA PNG as written by bot/teams/make_icons.py."""
    import zlib

    width, height, colour = png_info(data)
    assert colour == 6
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        if data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * 4 + 1
    pixels = []
    for y in range(height):
        row = raw[y * stride:(y + 1) * stride]
        assert row[0] == 0  # filter type None
        pixels += [tuple(row[1 + x * 4:5 + x * 4]) for x in range(width)]
    return pixels


def test_package_has_manifest_and_icons_at_the_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "dist" / "chinadesk-teams.zip"
    assert main(["teams-package", "--app-id", APP_ID.upper(), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    with zipfile.ZipFile(out) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
        color, outline = package.read("color.png"), package.read("outline.png")
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert APP_ID_PLACEHOLDER not in json.dumps(manifest)
    assert png_info(color)[:2] == (192, 192)
    assert png_info(outline)[:2] == (32, 32)


def test_default_output_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert main(["teams-package", "--app-id", APP_ID]) == 0
    assert (tmp_path / "chinadesk-teams.zip").is_file()


@pytest.mark.parametrize("bad", ["", "nope", "3f1a7c2e5b8d4e6f9a0b1c2d3e4f5a6b", f"{APP_ID}x", "28:" + APP_ID])
def test_a_malformed_app_id_is_one_friendly_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str):
    out = tmp_path / "x.zip"
    assert main(["teams-package", "--app-id", bad, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("chinadesk: --app-id must be the bot's Microsoft App ID, a GUID") and "\n" not in err
    assert not out.exists()


def test_manifest_template():
    manifest = json.loads((teams_dir() / "manifest.json").read_text(encoding="utf-8"))
    assert float(manifest["manifestVersion"]) >= 1.16
    assert manifest["$schema"].endswith(f"/v{manifest['manifestVersion']}/MicrosoftTeams.schema.json")
    assert manifest["id"] == APP_ID_PLACEHOLDER
    (bot,) = manifest["bots"]
    assert bot["botId"] == APP_ID_PLACEHOLDER
    assert sorted(bot["scopes"]) == ["groupChat", "personal", "team"]
    titles = [c["title"] for lst in bot["commandLists"] for c in lst["commands"]]
    assert titles == ["china-filing", "china-sector", "china-platform", "help"]
    # Limits the Teams manifest schema sets.
    assert len(manifest["name"]["short"]) <= 30 and len(manifest["description"]["short"]) <= 80
    for lst in bot["commandLists"]:
        assert len(lst["commands"]) <= 10
        assert all(len(c["title"]) <= 32 and len(c["description"]) <= 128 for c in lst["commands"])
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert all(url.startswith("https://") for key, url in manifest["developer"].items() if key.endswith("Url"))


def test_icons_are_the_sizes_teams_requires():
    color = (teams_dir() / "color.png").read_bytes()
    outline = (teams_dir() / "outline.png").read_bytes()
    assert png_info(color)[:2] == (192, 192)
    assert png_info(outline)[:2] == (32, 32)
    # The outline icon is white on transparent: every pixel is white, the shape lives in the alpha.
    pixels = rgba_pixels(outline)
    assert {p[:3] for p in pixels} == {(255, 255, 255)}
    alphas = {p[3] for p in pixels}
    assert 0 in alphas and 255 in alphas


async def test_manifest_commands_are_answered(ask):
    """Every command the manifest offers does something useful when chosen in Teams."""
    for text in ("china-filing", "china-sector", "china-platform"):
        assert (await ask(text, platform="teams", mode="direct")).kind == "menu"
    assert (await ask("help", platform="teams", mode="direct")).kind == "help"


async def test_every_example_command_in_the_manifest_is_answered(desk):
    """The commands the manifest shows as examples ("e.g. china-sector ...", and those in the description)
    are what a new user types first: each must get its card, not "I couldn't do that"."""
    import re

    from handlers import Request

    manifest = json.loads((teams_dir() / "manifest.json").read_text(encoding="utf-8"))
    shown = [c["description"] for cl in manifest["bots"][0]["commandLists"] for c in cl["commands"]]
    shown.append(manifest["description"]["full"])
    examples = {m for text in shown for m in re.findall(r"\b((?:china-)?(?:filing|sector|platform) [a-z0-9-]+"
                                                        r"(?: from \d{4}-\d{2}-\d{2})?)", text)}
    assert len(examples) >= 4, examples
    for example in sorted(examples):
        reply = await desk.handle(Request(text=example, platform="teams"))
        assert reply.kind not in ("error", "menu"), (example, reply.title)
