"""The defence-survival screen (dune_gui/bench/defence_survival.py): a change grayscale or
blur removes by construction reads as gone, one they keep reads as kept."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dune_gui.bench.class_gratings import add_gratings
from dune_gui.bench.defence_survival import paired, survival


def photo_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(60, 190, size=(150, 200, 3)).astype(np.uint8)
            Image.fromarray(pixels).resize((400, 300)).save(root / cls / f"{i}.png")
    return root


def test_a_luminance_free_grating_is_gone_under_grayscale_and_kept_without(
        tmp_path: Path) -> None:
    clean = photo_folder(tmp_path / "clean")
    add_gratings(clean, tmp_path / "grating", psnr_db=30.0, period=30.0)
    before, after = paired(clean, tmp_path / "grating", 64, every=1)
    assert before.shape == after.shape == (4, 3, round(64 * 8 / 7), round(64 * 8 / 7))
    assert survival(before, after, "grayscale")["direction"] == pytest.approx(0, abs=0.05)
    # 30 px at full size (300 px high) is 7 px where the victim looks: sigma-1 blur keeps
    # some of it, not all
    assert 0.1 < survival(before, after, "blur")["direction"] < 0.9


def test_a_luminance_offset_survives_grayscale_and_blur() -> None:
    generator = torch.Generator().manual_seed(0)
    clean = torch.randint(60, 190, (3, 3, 32, 32), dtype=torch.uint8, generator=generator)
    brighter = clean + 20
    for defence in ("grayscale", "blur"):
        kept = survival(clean, brighter, defence)
        assert kept["direction"] == pytest.approx(1.0, abs=0.05)
        assert kept["size"] == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError):
        survival(clean, brighter, "coin")
    assert math.isfinite(survival(clean, clean, "jpeg10")["size"])
