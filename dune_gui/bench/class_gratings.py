"""Research tool: a class-wise chroma grating added to every photo of a labeled folder, a
screen for a shortcut a pretrained victim learns through its crops at a small cost to the
eye.

    python -m dune_gui.bench.class_gratings PH/train PH/gratings --psnr 35 --period 6

Why a grating: against a pretrained victim only a class-wise colour cast moved it (docs/
verification-photos.md, runs 9-10), because it survives the random crops and flips of
training, which class-wise patches do not; but a cast is visible before it works. A
sinusoidal grating is also the same everywhere in the picture (any crop holds it, at a
scale that changes by less than a factor of two), and people barely see colour that
alternates every few pixels (chroma sensitivity falls fast with spatial frequency; JPEG's
chroma subsampling rests on it). Each class gets its own signature: an orientation (0, 90,
30 + 150 or 60 + 120 degrees; the pairs are their own mirror images, so a flip does not
turn one class's signature into another's) and a colour axis with no luminance (one of
three, 60 degrees apart in the plane orthogonal to the luma weights), random phase per
image. The amplitude gives the requested PSNR before rounding and clipping: the same
everywhere (`--shape flat`), or following the Invisible level's per-pixel budget
(`--shape texture`: the engine's just-noticeable-change map, large in texture and on dark
or bright areas, small on flat mid-tones), so the stripes sit where the picture hides them.

Writes PNGs (`<class>/<stem>.png`), never into the source, and prints the written files'
distortion at full resolution (PSNR, SSIM, CIEDE2000 mean and 99th percentile: the
engine's measures; not its just-noticeable share, which counts luminance change, and the
grating has none). Not a protection level: a measurement, for `dune-cli evaluate --train
NAME=OUT`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dune_gui.bench.distortion import as_tensor, measure, summary
from dune_gui.engine.data import scan_folder
from dune_gui.engine.metrics import jnd_map

LUMA = np.array([0.299, 0.587, 0.114])
ORIENTATIONS: tuple[tuple[float, ...], ...] = ((0.0,), (90.0,), (30.0, 150.0), (60.0, 120.0))
COLOUR_AXES = (0.0, 60.0, 120.0)  # degrees in the zero-luminance plane
SHAPES = ("flat", "texture")


def chroma_axis(degrees: float) -> np.ndarray:
    """A unit RGB direction with no luminance (Rec. 601 luma), `degrees` round the plane."""
    red_green = np.array([1.0, -LUMA[0] / LUMA[1], 0.0])
    red_green /= np.linalg.norm(red_green)
    other = np.cross(LUMA, red_green)
    other /= np.linalg.norm(other)
    angle = math.radians(degrees)
    return math.cos(angle) * red_green + math.sin(angle) * other


def signatures(classes: int) -> list[tuple[tuple[float, ...], float]]:
    """(orientations, colour axis) for each class: all orientations on one axis first."""
    table = [(o, c) for c in COLOUR_AXES for o in ORIENTATIONS]
    if classes > len(table):
        raise ValueError(f"at most {len(table)} classes get distinct gratings")
    return table[:classes]


def grating(height: int, width: int, orientations: tuple[float, ...], period: float,
            rng: np.random.Generator) -> np.ndarray:
    """A height x width field of unit mean square: the sum of one cosine per orientation,
    each with a random phase."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    field = np.zeros((height, width))
    for degrees in orientations:
        t = math.radians(degrees)
        field += np.cos(2 * math.pi * (xx * math.cos(t) + yy * math.sin(t)) / period
                        + rng.uniform(0, 2 * math.pi))
    return field * math.sqrt(2 / len(orientations))


def amplitude(pixels: np.ndarray, field: np.ndarray, shape: str, rms: float) -> np.ndarray:
    """Per-pixel amplitude (H x W, 0..255 units) that gives the grating `field` a per-channel
    root mean square of `rms` over the image: uniform, or in proportion to the image's
    just-noticeable change (`texture`)."""
    if shape == "flat":
        return np.full(field.shape, rms)
    if shape != "texture":
        raise ValueError(f"shape is one of {SHAPES}, not {shape!r}")
    weight = jnd_map(as_tensor(pixels))[0, 0].double().numpy()
    return rms * weight / math.sqrt(float((weight**2 * field**2).mean()))


def add_gratings(source: Path, target: Path, psnr_db: float, period: float, seed: int = 0,
                 shape: str = "flat") -> list[dict[str, float]]:
    """Every image of the labeled folder `source` with its class's grating, as PNG under
    `target`; returns each written image's distortion (`measure`)."""
    if target.exists():
        raise FileExistsError(f"{target} exists; give a new folder")
    scan = scan_folder(source)
    table = signatures(len(scan.classes))
    rms = 255 * 10 ** (-psnr_db / 20)  # per channel
    rng = np.random.default_rng(seed)
    rows = []
    for item in scan.items:
        orientations, axis = table[item.label]
        with Image.open(item.path) as img:
            pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
        field = grating(pixels.shape[0], pixels.shape[1], orientations, period, rng)
        # a unit axis spreads the field's power over three channels: sqrt(3) keeps the
        # per-channel mean square at rms^2
        size = amplitude(pixels, field, shape, rms)
        change = math.sqrt(3) * (size * field)[..., None] * chroma_axis(axis)
        out = np.clip(pixels + change, 0, 255).round().astype(np.uint8)
        path = target / scan.classes[item.label] / (Path(item.rel).stem + ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(path)
        rows.append(measure(pixels, out.astype(np.float64)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--psnr", type=float, default=35.0, help="dB, before clipping")
    parser.add_argument("--period", type=float, default=6.0, help="pixels at full size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", choices=SHAPES, default="flat",
                        help="amplitude the same everywhere, or following the texture")
    args = parser.parse_args()
    torch.set_num_threads(1)  # per-image measures of small photos: threads cost more
    rows = add_gratings(args.source, args.target, args.psnr, args.period, args.seed,
                        args.shape)
    print(f"wrote {args.target}: {summary(rows)}")


if __name__ == "__main__":
    main()
