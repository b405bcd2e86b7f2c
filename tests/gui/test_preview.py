"""The preview panes show what they claim, computed exactly as the export would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dune_gui.gui.main_window import MainWindow
from dune_gui.gui.preview_panel import amplify_colour, describe_colour, spatial_from_pane
from tests.conftest import make_labeled_folder
from tests.gui.conftest import load, wait_idle


def test_preview_panes_show_what_they_claim(qtbot, window: MainWindow, tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=3, per_class=4)
    window.settings_panel.set_settings({"colour_grid": 1})  # one cast: a flat swatch
    load(qtbot, window, src)
    window.start_preview()
    wait_idle(qtbot, window)
    assert window.preview_list.count() == 4  # a few, spread over the classes
    # the progress ends on the preview's own step, not on the one before it
    assert window.stage_label.text() == "Step 4 of 4: Previewing images"
    assert window.eta_label.text() == "done"
    panel = window.preview_panel
    image = panel.current
    assert image is not None
    original, spatial_pane, colour_pane, protected = panel.pane_arrays
    assert np.array_equal(original, image.original)
    eps = window.current_config().eps
    # the spatial pane's amplified values map back to a perturbation within eps
    recovered = spatial_from_pane(spatial_pane, eps)
    assert np.abs(recovered).max() <= eps + 1e-6
    assert np.allclose(recovered, image.spatial, atol=1e-6)
    # the colour pane is a flat swatch pointing the same way as the class offset
    swatch = colour_pane[0, 0] - 0.5
    assert np.allclose(colour_pane, colour_pane[0, 0])
    assert np.allclose(np.sign(np.round(swatch, 6)), np.sign(np.round(image.colour, 6)))
    assert np.array_equal(protected, image.protected)
    panel.compare.setChecked(True)
    assert "ORIGINAL" in panel.captions[3].text()
    assert "steered toward" in panel.info.text()


def test_a_colour_field_is_described_and_shown_point_by_point() -> None:
    values = np.array([0.1, -0.1, 0.0, 0.2,  # red at the four corners, then green, blue
                       0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.2])
    assert describe_colour(values) == "Colour field, 2 x 2 points from -51.0 to +51.0 /255"
    # a level (or mode) without the colour branch says so instead of describing zeros
    assert describe_colour(np.zeros(12)).startswith("No colour shift")
    field = np.zeros((5, 4, 3), dtype=np.float32)
    field[0, 0] = (0.1, 0.0, 0.0)
    field[4, 3] = (0.2, 0.0, -0.2)
    swatch, gain = amplify_colour(field)
    assert swatch.shape == (5, 4, 3) and gain == pytest.approx(2.5)
    assert swatch[0, 0, 0] == pytest.approx(0.75) and swatch[2, 2, 0] == pytest.approx(0.5)
    assert swatch[4, 3, 0] == pytest.approx(1.0) and swatch[4, 3, 2] == pytest.approx(0.0)


def test_difference_flicker_and_actual_size(qtbot, window: MainWindow, tmp_path: Path) -> None:
    from dune_gui.gui.preview_panel import difference_view

    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=2)
    load(qtbot, window, src)
    window.start_preview()
    wait_idle(qtbot, window)
    panel = window.preview_panel
    image = panel.current
    assert image is not None
    info = panel.info.text()
    assert "changed beyond notice" in info and "at the most changed" in info
    panel.difference.setChecked(True)
    assert panel.captions[3].text().startswith("Difference")
    diff, gain = difference_view(image.original, image.protected)
    assert diff.max() == pytest.approx(1.0) and gain > 1
    panel.difference.setChecked(False)
    panel.flicker.setChecked(True)
    qtbot.waitUntil(lambda: panel.compare.isChecked(), timeout=2000)  # it alternates
    panel.flicker.setChecked(False)
    assert not panel.compare.isChecked()
    panel.actual_size()
    assert all(v.transform().m11() == 1.0 for v in panel.views)
