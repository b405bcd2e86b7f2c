"""Measure: the full-resolution distortion of a folder's copies against their clean sources,
with the measures a protect run writes into its manifest (PSNR, SSIM, CIEDE2000 mean and
99th percentile), for folders no protect run wrote (a screen's output, two changes
stacked on one photo).

    python -m dune_gui.bench.distortion --clean PH/train --protected PH/inv-g38p10 [--every 5]
        [--scale 1,0.85,0.8] [--regions]

With `--scale` each copy's change from its source is scaled (and rounded to 8 bits) first:
an estimate of what a smaller bound would cost, without making the copies again. With
`--regions` it also says where the pixels changed beyond notice lie: on flat or textured
ground, dark or not (`REGIONS`), since a few percent beyond notice is a visible blotch
on a flat backdrop and invisible in foliage.
Copies are matched to sources by their path without extension (a PNG copy of a JPEG).
`evaluate` reports distortion at the victim's scale; this is what a person sees.
"""

from __future__ import annotations

import argparse
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from dune_gui.engine.data import scan_folder
from dune_gui.engine.export import quality_metrics
from dune_gui.engine.metrics import MEASURES, beyond_notice, local_luma

# Flat: the local spread of luma (metrics.local_luma) under 2 levels, where texture adds
# under one level to the 3-level threshold of jnd_map; dark: a local mean under 64 of 255,
# where the thirty-second session's bands showed.
FLAT_SPREAD = 2.0
DARK_BACKGROUND = 64.0
REGIONS = ("flat, dark", "flat, light", "textured, dark", "textured, light")


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    """H x W x 3 pixels (0..255) as the engine's 1 x 3 x H x W float in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].float() / 255


def measure(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """The measures a protect run's export writes into the manifest, for one image."""
    return quality_metrics(as_tensor(before)[0], as_tensor(after)[0])


def region_counts(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Pixels in each of `REGIONS` of the source (row 0) and of them the ones whose luma
    changed beyond notice (row 1): the count behind metrics.visible_share, split by where
    it lies (2 x 4)."""
    a, b = as_tensor(before), as_tensor(after)
    beyond = beyond_notice(a, b)[0, 0]
    background, spread = (t[0, 0] for t in local_luma(a))
    flat, dark = spread < FLAT_SPREAD, background < DARK_BACKGROUND
    masks = (flat & dark, flat & ~dark, ~flat & dark, ~flat & ~dark)
    return np.array([[int(m.sum()) for m in masks], [int((m & beyond).sum()) for m in masks]])


def region_table(counts: np.ndarray) -> str:
    """`region_counts` summed over a folder, as a Markdown table: each region's share of
    the pixels, the share of its pixels beyond notice, and its share of all those beyond
    notice."""
    pixels, beyond = counts
    lines = ["| region | share of pixels | beyond notice there | share of all beyond notice |",
             "| --- | --- | --- | --- |"]
    for name, n, m in zip(REGIONS, pixels, beyond, strict=True):
        lines.append(f"| {name} | {n / pixels.sum():.1%} | {m / max(n, 1):.1%} "
                     f"| {m / max(beyond.sum(), 1):.1%} |")
    lines.append(f"| all | 100% | {beyond.sum() / pixels.sum():.1%} | 100% |")
    return "\n".join(lines)


def summary(rows: list[dict[str, float]]) -> str:
    """Mean of each measure over the images, one line."""
    means = {k: float(np.mean([r[k] for r in rows])) for k in MEASURES}
    return (f"{len(rows)} images, full resolution: PSNR {means['psnr']:.1f} dB, "
            f"SSIM {means['ssim']:.3f}, CIEDE2000 {means['delta_e']:.2f} "
            f"(p99 {means['delta_e_p99']:.2f})")


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64)


def scaled(before: np.ndarray, after: np.ndarray, scale: float) -> np.ndarray:
    """The copy with its change from the source scaled, as an 8-bit image holds it."""
    return np.rint(np.clip(before + scale * (after - before), 0, 255))


def copy_pairs(clean: Path, protected: Path) -> list[tuple[Path, Path]]:
    """(source, copy) for every copy in `protected` that has a source in `clean`."""
    sources = {str(PurePosixPath(item.rel).with_suffix("")): item.path
               for item in scan_folder(clean).items}
    copies = [(sources[key], item.path) for item in scan_folder(protected).items
              if (key := str(PurePosixPath(item.rel).with_suffix(""))) in sources]
    if not copies:
        raise ValueError(f"no image of {protected} has a source in {clean}")
    return copies


def folder_distortion(clean: Path, protected: Path, every: int = 1, scale: float = 1.0
                      ) -> list[dict[str, float]]:
    """`measure` for every `every`-th copy in `protected` that has a source in `clean`
    (its change scaled by `scale`)."""
    rows = []
    for a, b in copy_pairs(clean, protected)[::every]:
        before = _pixels(a)
        rows.append(measure(before, scaled(before, _pixels(b), scale)))
    return rows


def folder_regions(clean: Path, protected: Path, every: int = 1) -> np.ndarray:
    """`region_counts` summed over every `every`-th copy in `protected`."""
    total = np.zeros((2, len(REGIONS)), dtype=np.int64)
    for a, b in copy_pairs(clean, protected)[::every]:
        total += region_counts(_pixels(a), _pixels(b))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--protected", type=Path, action="append", required=True)
    parser.add_argument("--every", type=int, default=1, help="measure every N-th copy")
    parser.add_argument("--scale", default="1", help="comma separated factors for each "
                        "copy's change (an estimate of a smaller bound)")
    parser.add_argument("--regions", action="store_true",
                        help="also where the pixels beyond notice lie (flat or textured, "
                        "dark or not)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # per-image measures of photos: threads cost more than they give
    for folder in args.protected:
        for factor in (float(v) for v in args.scale.split(",")):
            rows = folder_distortion(args.clean, folder, args.every, factor)
            label = "" if factor == 1 else f" (change scaled by {factor:g})"
            print(f"{folder}{label}: {summary(rows)}")
        if args.regions:
            print(region_table(folder_regions(args.clean, folder, args.every)))


if __name__ == "__main__":
    main()
