"""The class-grating screen (dune_gui/bench/class_gratings.py): the requested PSNR, no
luminance change, one signature per class that a mirror image keeps, the source untouched;
the texture-shaped grating keeps off flat areas; the reported distortion is the files'."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dune_gui.bench.class_gratings import LUMA, add_gratings, chroma_axis, signatures, summary


def flat_folder(root: Path) -> Path:
    for k, cls in enumerate(("a", "b", "c")):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (192, 160), (90 + 20 * k, 120, 100 + i)).save(root / cls / f"{i}.jpg")
    return root


def test_psnr_as_asked_and_no_luminance_change(tmp_path: Path) -> None:
    source = flat_folder(tmp_path / "in")
    before = sorted((p.name, p.read_bytes()) for p in source.rglob("*.jpg"))
    rows = add_gratings(source, tmp_path / "out", psnr_db=32.0, period=6.0)
    assert len(rows) == 6
    assert sorted((p.name, p.read_bytes()) for p in source.rglob("*.jpg")) == before
    for src in source.rglob("*.jpg"):
        out = tmp_path / "out" / src.parent.name / (src.stem + ".png")
        a = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64)
        b = np.asarray(Image.open(out), dtype=np.float64)
        assert b.shape == a.shape
        mse = ((a - b) ** 2).mean()
        assert 10 * math.log10(255 ** 2 / mse) == pytest.approx(32.0, abs=0.3)
        assert np.abs((b - a) @ LUMA).mean() < 0.5  # rounding only
    assert all(r["psnr"] == pytest.approx(32.0, abs=0.3) for r in rows)
    mean_psnr = np.mean([r["psnr"] for r in rows])
    assert f"PSNR {mean_psnr:.1f} dB" in summary(rows)


def half_textured_folder(root: Path) -> Path:
    """One class, one image: noise on the left half, flat mid-grey on the right."""
    rng = np.random.default_rng(3)
    pixels = np.full((96, 128, 3), 128, dtype=np.uint8)
    pixels[:, :64] = rng.integers(40, 216, size=(96, 64, 1))
    (root / "a").mkdir(parents=True)
    Image.fromarray(pixels).save(root / "a" / "0.png")
    return root


def test_texture_shape_keeps_off_flat_areas_at_the_asked_psnr(tmp_path: Path) -> None:
    source = half_textured_folder(tmp_path / "in")
    (row,) = add_gratings(source, tmp_path / "out", psnr_db=30.0, period=8.0, shape="texture")
    a = np.asarray(Image.open(source / "a" / "0.png"), dtype=np.float64)
    b = np.asarray(Image.open(tmp_path / "out" / "a" / "0.png"), dtype=np.float64)
    mse = ((a - b) ** 2).mean()
    assert 10 * math.log10(255 ** 2 / mse) == pytest.approx(30.0, abs=0.3)
    assert row["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-3)
    change = np.abs(b - a).mean(2)
    # keep clear of the boundary, where the texture window straddles both halves
    assert change[:, 72:].mean() * 4 < change[:, :56].mean()


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
