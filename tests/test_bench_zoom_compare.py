"""The zoom picture (dune_gui/bench/zoom_compare.py): the same region from every folder,
enlarged pixel for pixel, whatever each copy's extension."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from dune_gui.bench.zoom_compare import GAP, zoom_strip


def test_columns_are_the_region_enlarged_without_smoothing(tmp_path: Path) -> None:
    (tmp_path / "a" / "cls").mkdir(parents=True)
    (tmp_path / "b" / "cls").mkdir(parents=True)
    Image.new("RGB", (50, 40), (10, 20, 30)).save(tmp_path / "a" / "cls" / "x.jpg", quality=100)
    copy = Image.new("RGB", (50, 40), (200, 20, 30))
    copy.putpixel((5, 6), (0, 255, 0))
    copy.save(tmp_path / "b" / "cls" / "x.png")
    strip = zoom_strip([tmp_path / "a", tmp_path / "b"], "cls/x", (5, 6, 15, 12), 3)
    assert strip.size == (2 * 30 + GAP, 18)
    left = 30 + GAP
    assert all(strip.getpixel((left + dx, dy)) == (0, 255, 0) for dx in range(3) for dy in range(3))
    assert strip.getpixel((left + 3, 0)) == (200, 20, 30)
    with pytest.raises(FileNotFoundError):
        zoom_strip([tmp_path / "a"], "cls/missing", (0, 0, 4, 4), 1)
