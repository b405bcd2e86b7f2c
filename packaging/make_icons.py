"""Render the app icon (a shield over dune waves) at the usual sizes into assets/icons/.

    python packaging/make_icons.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
OUT = Path(__file__).resolve().parents[1] / "assets" / "icons"


def render(size: int) -> Image.Image:
    s = 1024  # draw large, then downsample for clean edges
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    shield = [(512, 60), (900, 190), (880, 560), (512, 970), (144, 560), (124, 190)]
    d.polygon(shield, fill=(36, 52, 84, 255))
    inner = [(512, 130), (830, 240), (812, 540), (512, 880), (212, 540), (194, 240)]
    d.polygon(inner, fill=(242, 196, 120, 255))
    mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(mask).polygon(inner, fill=255)
    waves = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    w = ImageDraw.Draw(waves)
    for i, colour in enumerate(((214, 137, 66, 255), (176, 92, 48, 255), (120, 60, 40, 255))):
        top = 520 + i * 130
        w.ellipse([-200 + i * 150, top, 700 + i * 150, top + 700], fill=colour)
    img.paste(waves, (0, 0), Image.composite(waves, Image.new("RGBA", (s, s)), mask))
    d.ellipse([600, 250, 720, 370], fill=(255, 250, 235, 255))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        render(size).save(OUT / f"dune-protect-{size}.png", optimize=True)
    print(f"wrote {len(SIZES)} icons to {OUT}")


if __name__ == "__main__":
    main()
