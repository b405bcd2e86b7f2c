"""The trade-off picture: every point on the frame, written as a PNG."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from dune_gui.engine.plots import covers, plot_tradeoff, psnr_axis, stack_labels


def test_axis_keeps_the_default_range_and_widens_for_outliers():
    assert psnr_axis([("Invisible", 32.5, 25.9)]) == (16.0, 40.0)
    lo, hi = psnr_axis([("OPS", 47.3, 86.0), ("LSP", 14.2, 30.0)])
    assert lo < 14.2 - 0.5 and hi > 47.3 + 0.5


def test_points_beyond_40_db_are_drawn_inside_the_frame(tmp_path: Path):
    path = tmp_path / "tradeoff.png"
    plot_tradeoff([("OPS", 47.3, 50.0)], path, chance=10.0, clean=90.0)
    img = Image.open(path).convert("RGB")
    assert img.size == (760, 460)
    marker = [(x, y) for x in range(img.width) for y in range(img.height)
              if img.getpixel((x, y)) == (40, 80, 200)]
    assert marker and all(70 < x < 760 - 30 for x, _ in marker)


def test_close_points_get_labels_that_do_not_overlap(tmp_path: Path):
    # Two levels of nearly equal distortion and accuracy (like the photo benchmark's
    # Standard and Strong rows) and a third far away: no two labels share a line.
    wanted = [(300.0, 100.0, 150.0), (290.0, 103.0, 150.0), (600.0, 100.0, 80.0)]
    placed = stack_labels(wanted)
    assert placed[0] == (300.0, 100.0) and placed[2] == (600.0, 100.0)
    assert placed[1][0] == 290.0 and abs(placed[1][1] - placed[0][1]) >= 12
    plot_tradeoff([("Standard", 24.6, 82.4), ("Strong", 24.1, 83.0)], tmp_path / "t.png",
                  10.0, 89.0)


def test_labels_keep_off_the_points():
    # A point right of another at the same accuracy (the photo figure's Invisible level and
    # the two 40 dB rows): the label moves off the dots, never over one.
    dots = [(400.0, 94.0, 412.0, 106.0), (600.0, 94.0, 612.0, 106.0)]
    wanted = [(408.0, 94.0, 250.0), (608.0, 94.0, 100.0)]
    placed = stack_labels(wanted, obstacles=dots)
    for (x, y), (_, _, length) in zip(placed, wanted, strict=True):
        assert not covers((x, y, x + length, y + 12), dots)
