"""The class-grating screen (dune_gui/bench/class_gratings.py): the requested PSNR, no
luminance change, one signature per class that a mirror image keeps, the source untouched."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dune_gui.bench.class_gratings import LUMA, add_gratings, chroma_axis, signatures


def flat_folder(root: Path) -> Path:
    for k, cls in enumerate(("a", "b", "c")):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (192, 160), (90 + 20 * k, 120, 100 + i)).save(root / cls / f"{i}.jpg")
    return root


def test_psnr_as_asked_and_no_luminance_change(tmp_path: Path) -> None:
    source = flat_folder(tmp_path / "in")
    before = sorted((p.name, p.read_bytes()) for p in source.rglob("*.jpg"))
    assert add_gratings(source, tmp_path / "out", psnr=32.0, period=6.0) == 6
    assert sorted((p.name, p.read_bytes()) for p in source.rglob("*.jpg")) == before
    for src in source.rglob("*.jpg"):
        out = tmp_path / "out" / src.parent.name / (src.stem + ".png")
        a = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64)
        b = np.asarray(Image.open(out), dtype=np.float64)
        assert b.shape == a.shape
        mse = ((a - b) ** 2).mean()
        assert 10 * math.log10(255 ** 2 / mse) == pytest.approx(32.0, abs=0.3)
        assert np.abs((b - a) @ LUMA).mean() < 0.5  # rounding only


def test_signatures_distinct_and_mirror_safe() -> None:
    table = signatures(10)
    assert len(set(table)) == 10
    for orientations, _ in table:  # a horizontal flip maps t to 180 - t
        assert {(180 - t) % 180 for t in orientations} == {t % 180 for t in orientations}
    with pytest.raises(ValueError):
        signatures(13)


def test_colour_axes_are_unit_and_luminance_free() -> None:
    for degrees in (0.0, 60.0, 120.0):
        axis = chroma_axis(degrees)
        assert np.linalg.norm(axis) == pytest.approx(1.0)
        assert axis @ LUMA == pytest.approx(0.0, abs=1e-12)
