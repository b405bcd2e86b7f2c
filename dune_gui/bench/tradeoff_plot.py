"""Draw victim accuracy against distortion for protection levels (the trade-off curve).

    python -m dune_gui.bench.tradeoff_plot --out docs/tradeoff-cifar10.png \
        --point "Invisible=31.8:31.8" --point "Standard=20.9:15.8" ...

Each point is NAME=PSNR_dB:ACCURACY_% (read them from the reports and manifests the
verification commands write; docs/verification.md lists them with their commands). Lower
and further right is better: less visible, and a victim closer to chance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--point", action="append", required=True, metavar="NAME=PSNR:ACC")
    parser.add_argument("--chance", type=float, default=10.0)
    parser.add_argument("--clean", type=float, default=None, help="clean accuracy, %")
    parser.add_argument("--title", default="Victim accuracy on clean test images vs distortion")
    args = parser.parse_args()
    points = []
    for spec in args.point:
        name, values = spec.split("=", 1)
        psnr, acc = (float(v) for v in values.split(":"))
        points.append((name, psnr, acc))
    width, height, left, right, top, bottom = 760, 460, 70, 30, 40, 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x_lo, x_hi = 16.0, 40.0
    y_hi = max(60.0, args.clean or 0.0)

    def at(psnr: float, acc: float) -> tuple[float, float]:
        x = left + (psnr - x_lo) / (x_hi - x_lo) * (width - left - right)
        y = height - bottom - acc / y_hi * (height - top - bottom)
        return x, y

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for psnr in range(int(x_lo), int(x_hi) + 1, 4):
        x, _ = at(psnr, 0)
        draw.line([(x, height - bottom), (x, height - bottom + 4)], fill="black")
        draw.text((x - 8, height - bottom + 8), f"{psnr}", fill="black", font=font)
    for acc in range(0, int(y_hi) + 1, 10):
        _, y = at(x_lo, acc)
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((left - 30, y - 6), f"{acc}%", fill="black", font=font)
    for level, label, colour in ((args.chance, "chance", (120, 120, 120)),
                                 (args.clean, "trained on originals", (200, 60, 60))):
        if level is not None:
            _, y = at(x_lo, level)
            draw.line([(left, y), (width - right, y)], fill=colour, width=1)
            draw.text((left + 6, y - 14), label, fill=colour, font=font)
    x32, _ = at(32, 0)
    draw.line([(x32, top), (x32, height - bottom)], fill=(60, 140, 60))
    draw.text((x32 + 4, top + 4), "32 dB: invisible target", fill=(60, 140, 60), font=font)
    for name, psnr, acc in points:
        x, y = at(psnr, acc)
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(40, 80, 200))
        draw.text((x + 8, y - 6), f"{name} ({psnr:.1f} dB, {acc:.1f}%)", fill="black",
                  font=font)
    draw.text((left, 12), args.title, fill="black", font=font)
    draw.text((left + 200, height - 24), "PSNR of the protected images, dB (right = less "
              "visible)", fill="black", font=font)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out)


if __name__ == "__main__":
    main()
