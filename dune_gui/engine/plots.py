"""The trade-off picture: victim accuracy against the distortion each protection costs."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_write


def psnr_axis(points: list[tuple[str, float, float]]) -> tuple[float, float]:
    """The PSNR range drawn: 16-40 dB (visible casts to the invisible target and beyond),
    widened in steps of 4 dB so that no point falls off the frame (OPS's one pixel per
    image measures well above 40 dB)."""
    lo, hi = 16.0, 40.0
    for _, psnr, _ in points:
        while psnr < lo + 1:
            lo -= 4
        while psnr > hi - 1:
            hi += 4
    return lo, hi


Box = tuple[float, float, float, float]  # left, top, right, bottom


def covers(box: Box, others: list[Box]) -> bool:
    lft, t, r, b = box
    return any(lft < r2 and r > l2 and t < b2 and b > t2 for l2, t2, r2, b2 in others)


def stack_labels(wanted: list[tuple[float, float, float]], line: float = 12.0,
                 obstacles: list[Box] | None = None) -> list[tuple[float, float]]:
    """Where to draw each label, given (x, y, length) where it would go: a label that
    would cover an earlier one or an obstacle (the drawn points) moves down a line
    (levels of similar distortion and accuracy sit close together, and their labels must
    stay readable)."""
    placed: list[Box] = list(obstacles or [])
    labels: list[Box] = []
    for x, y, length in wanted:
        while covers((x, y, x + length, y + line), placed):
            y += line
        labels.append((x, y, x + length, y + line))
        placed.append(labels[-1])
    return [(lft, t) for lft, t, _, _ in labels]


def plot_tradeoff(points: list[tuple[str, float, float]], path: Path, chance: float,
                  clean: float | None = None,
                  title: str = "Victim accuracy on clean test images vs distortion") -> None:
    """Points are (name, PSNR dB, accuracy %). Lower and further right is better: less
    visible, and a victim closer to chance. Drawn with Pillow."""
    width, height, left, right, top, bottom = 760, 460, 70, 30, 40, 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x_lo, x_hi = psnr_axis(points)
    # Room above the highest accuracy (pretrained victims on photos score near 90%).
    y_hi = 10.0 * math.ceil((max([60.0, clean or 0.0] + [acc for _, _, acc in points]) + 8) / 10)

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
    for level, label, colour in ((chance, "chance", (120, 120, 120)),
                                 (clean, "trained on originals", (200, 60, 60))):
        if level is not None:
            _, y = at(x_lo, level)
            draw.line([(left, y), (width - right, y)], fill=colour, width=1)
            draw.text((left + 6, y - 14), label, fill=colour, font=font)
    x32, _ = at(32, 0)
    draw.line([(x32, top), (x32, height - bottom)], fill=(60, 140, 60))
    # At the bottom, where no victim's accuracy lies (below chance), clear of the labels.
    draw.text((x32 + 4, height - bottom - 16), "32 dB: invisible target", fill=(60, 140, 60),
              font=font)
    centres = [at(psnr, acc) for _, psnr, acc in points]
    dots: list[Box] = [(x - 6, y - 6, x + 6, y + 6) for x, y in centres]
    labels, wanted = [], []
    for (name, psnr, acc), (x, y) in zip(points, centres, strict=True):
        label = f"{name} ({psnr:.1f} dB, {acc:.1f}%)"
        length = draw.textlength(label, font=font)
        # On the point's right unless that leaves the picture or covers another point.
        on_right = (x + 8, y - 6, x + 8 + length, y + 6)
        fits = length <= width - right - (x + 8) and not covers(on_right, dots)
        tx = x + 8 if fits else x - 8 - length
        labels.append(label)
        wanted.append((tx, y - 6, length))
    for label, (tx, ty), (_, wy, length), (x, y) in zip(
            labels, stack_labels(wanted, obstacles=dots), wanted, centres, strict=True):
        if ty - wy >= 12:  # moved down a line or more: a leader line says whose it is
            draw.line([(x, y + 5), (tx + 4 if tx > x else tx + length - 4, ty)],
                      fill=(150, 150, 150))
        draw.text((tx, ty), label, fill="black", font=font)
    for x, y in centres:
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(40, 80, 200))
    draw.text((left, 12), title, fill="black", font=font)
    draw.text((left + 200, height - 24), "PSNR of the protected images, dB (right = less "
              "visible)", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        img.save(fh, format="PNG")
