"""Draw the Teams app icons with the standard library only (zlib + struct PNG writer).

    python teams/make_icons.py      # rewrites teams/color.png (192x192) and teams/outline.png (32x32)

Teams wants a full-colour 192x192 icon and a 32x32 outline icon that is white on a transparent
background. Both show the same mark: a ring open to the right (a "C", for China Desk) with a dot.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).parent
RED = (200, 16, 46)  # China red
GOLD = (255, 205, 0)
WHITE = (255, 255, 255)


def png(width: int, height: int, rgba: list[tuple[int, int, int, int]]) -> bytes:
    """An 8-bit RGBA PNG (colour type 6), no interlace."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(
        b"\x00" + b"".join(bytes(rgba[y * width + x]) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def coverage(size: int, inside, samples: int = 4) -> list[float]:
    """Anti-aliased coverage of shape ``inside(x, y)`` (unit square coordinates) per pixel."""
    out = []
    step = 1.0 / samples
    for py in range(size):
        for px in range(size):
            hits = sum(
                inside((px + (i + 0.5) * step) / size, (py + (j + 0.5) * step) / size)
                for i in range(samples) for j in range(samples)
            )
            out.append(hits / samples**2)
    return out


def ring(x: float, y: float) -> bool:
    """A thick ring centred in the square with a gap facing right: the "C"."""
    dx, dy = x - 0.5, y - 0.5
    r = math.hypot(dx, dy)
    angle = math.degrees(math.atan2(dy, dx))
    return 0.22 <= r <= 0.36 and abs(angle) > 40


def dot(x: float, y: float) -> bool:
    return math.hypot(x - 0.72, y - 0.5) <= 0.075


def rounded_square(x: float, y: float, radius: float = 0.18) -> bool:
    cx = min(max(x, radius), 1 - radius)
    cy = min(max(y, radius), 1 - radius)
    return math.hypot(x - cx, y - cy) <= radius


def mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(a[i] * (1 - t) + b[i] * t) for i in range(3))  # type: ignore[return-value]


def color_icon(size: int = 192) -> bytes:
    bg, c, d = coverage(size, rounded_square), coverage(size, ring), coverage(size, dot)
    pixels = []
    for i in range(size * size):
        rgb = mix(mix(RED, WHITE, c[i]), GOLD, d[i])
        pixels.append((*rgb, round(255 * bg[i])))
    return png(size, size, pixels)


def outline_icon(size: int = 32) -> bytes:
    # White only, shape in the alpha channel: Teams tints it for the app bar.
    c, d = coverage(size, ring), coverage(size, dot)
    return png(size, size, [(*WHITE, round(255 * max(c[i], d[i]))) for i in range(size * size)])


if __name__ == "__main__":
    (HERE / "color.png").write_bytes(color_icon())
    (HERE / "outline.png").write_bytes(outline_icon())
    print("wrote", HERE / "color.png", "and", HERE / "outline.png")
