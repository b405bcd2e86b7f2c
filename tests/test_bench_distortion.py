"""The full-resolution distortion measure (dune_gui/bench/distortion.py): copies matched to
their sources across extensions, the engine's measures, every N-th copy, a scaled change."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dune_gui.bench.distortion import (
    REGIONS,
    folder_distortion,
    folder_regions,
    region_counts,
    region_table,
    summary,
)


def test_a_known_change_measures_as_itself(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels = rng.integers(20, 230, size=(60, 80, 3)).astype(np.uint8)
        (tmp_path / "clean" / "a").mkdir(parents=True, exist_ok=True)
        (tmp_path / "copy" / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / "clean" / "a" / f"{i}.bmp")
        Image.fromarray(pixels + 4).save(tmp_path / "copy" / "a" / f"{i}.png")  # +4 levels
    rows = folder_distortion(tmp_path / "clean", tmp_path / "copy")
    assert len(rows) == 4
    assert all(r["psnr"] == pytest.approx(20 * math.log10(255 / 4), abs=0.01) for r in rows)
    assert all(0 < r["delta_e"] <= r["delta_e_p99"] for r in rows)
    assert len(folder_distortion(tmp_path / "clean", tmp_path / "copy", every=3)) == 2
    assert summary(rows).startswith("4 images, full resolution: PSNR 36.1 dB")
    # the change scaled by a half: +2 levels
    halved = folder_distortion(tmp_path / "clean", tmp_path / "copy", scale=0.5)
    assert all(r["psnr"] == pytest.approx(20 * math.log10(255 / 2), abs=0.01) for r in halved)
    with pytest.raises(ValueError):
        folder_distortion(tmp_path / "copy" / "a", tmp_path / "clean")


def test_the_change_beyond_notice_is_placed_on_flat_or_textured_and_dark_or_light_ground(
        tmp_path: Path) -> None:
    # left half a flat mid-grey, right half loud texture; a +5-level change everywhere is
    # beyond the 3-level threshold on the flat half only
    rng = np.random.default_rng(1)
    before = np.full((40, 80, 3), 128.0)
    before[:, 40:] = rng.integers(40, 215, size=(40, 40, 1))
    after = before + 5
    counts = region_counts(before, after)
    flat_light, textured_light = REGIONS.index("flat, light"), REGIONS.index("textured, light")
    assert counts[0].sum() == 40 * 80  # every pixel in one region
    assert counts[1, flat_light] == counts[0, flat_light] > 0.4 * 40 * 80
    assert counts[1, textured_light] < 0.05 * counts[0, textured_light]
    assert counts[0, REGIONS.index("flat, dark")] == 0  # nothing dark
    # a folder's table: the flat pixels hold nearly all the change beyond notice
    for folder, pixels in (("clean", before), ("copy", after)):
        (tmp_path / folder / "a").mkdir(parents=True)
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / folder / "a" / "0.png")
    total = folder_regions(tmp_path / "clean", tmp_path / "copy")
    assert (total == counts).all()
    table = region_table(total)
    assert "| flat, light |" in table and table.splitlines()[-1].startswith("| all | 100% |")
