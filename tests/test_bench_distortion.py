"""The full-resolution distortion measure (dune_gui/bench/distortion.py): copies matched to
their sources across extensions, the engine's measures, every N-th copy, a scaled change."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dune_gui.bench.distortion import folder_distortion, summary


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
