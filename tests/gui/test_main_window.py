"""The desktop app, offscreen, driving the real engine with tiny settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox

from dune_gui.engine import ProtectConfig
from dune_gui.gui.main_window import MainWindow
from dune_gui.gui.preview_panel import amplify_colour, describe_colour, spatial_from_pane
from tests.conftest import make_labeled_folder, tiny_settings

TIMEOUT = 180_000


@pytest.fixture
def settings_store(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical",
                        lambda parent, title, text, *a, **k: seen.append(text))
    return seen


@pytest.fixture
def window(qtbot, settings_store: QSettings, errors: list[str]) -> MainWindow:
    w = MainWindow(settings_store)
    qtbot.addWidget(w)
    w.settings_panel.set_settings(tiny_settings())
    return w


def _drop(window: MainWindow, folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def _wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.task is None, timeout=TIMEOUT)


def test_dropping_a_folder_scans_it_off_the_gui_thread(qtbot, window: MainWindow,
                                                       tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=3, per_class=4)
    (src / "airplane" / "notes.txt").write_text("x")
    _drop(window, src)
    _wait_idle(qtbot, window)
    panel = window.folder_panel
    assert panel.classes.topLevelItemCount() == 3
    assert [panel.classes.topLevelItem(i).text(1) for i in range(3)] == ["4", "4", "4"]
    assert panel.thumbs.count() == 4
    assert panel.skipped.count() == 1 and "not an image" in panel.skipped.item(0).text()
    assert window.output_edit.text().endswith("in-protected")


def test_one_class_folder_shows_the_problem(qtbot, window: MainWindow, tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=1, per_class=2)
    window.load_folder(src)
    _wait_idle(qtbot, window)
    assert "at least two" in window.folder_panel.header.text()


def test_full_run_through_the_worker_writes_the_protected_copy(qtbot, window: MainWindow,
                                                               tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=3, per_class=4)
    window.load_folder(src)
    _wait_idle(qtbot, window)
    out = tmp_path / "out"
    window.output_edit.setText(str(out))
    stages: set[str] = set()
    window.start_protect()
    assert window.task is not None
    window.task.progress.connect(lambda stage, *rest: stages.add(stage))
    assert window.preview_button.isEnabled() is False  # busy
    _wait_idle(qtbot, window)
    assert window.last_result is not None and window.last_result.status == "completed"
    assert len(list(out.rglob("*.png"))) == 12
    assert (out / "manifest.json").exists()
    bar, _ = window.bars["export"]
    assert bar.value() == bar.maximum() == 12
    assert {"surrogates", "colour", "spatial", "export"} <= stages
    assert window.open_output_button.isEnabled()

    # Verify from the app: a victim on the protected copy vs one on the clean folder
    panel = window.verify_panel
    for name, box in panel.defence_boxes.items():
        box.setChecked(name == "none")
    for box in panel.peer_boxes.values():
        box.setChecked(False)
    panel.epochs.setValue(1)
    window.start_verify()
    _wait_idle(qtbot, window)
    assert panel.table.rowCount() == 2 and panel.table.columnCount() == 1
    assert panel.table.verticalHeaderItem(1).text() == "dune"
    assert panel.table.item(0, 0).text().endswith("%")
    assert not panel.plot.pixmap().isNull()


def test_cancel_stops_within_a_batch_and_keeps_finished_images(qtbot, window: MainWindow,
                                                                tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=3, per_class=4)
    window.load_folder(src)
    _wait_idle(qtbot, window)
    out = tmp_path / "out"
    window.output_edit.setText(str(out))
    window.start_protect()
    assert window.task is not None

    def on_progress(stage: str, done: int, total: int, message: str, eta: float) -> None:
        if stage == "spatial" and done > 0:
            window.cancel_task()

    window.task.progress.connect(on_progress)
    _wait_idle(qtbot, window)
    assert window.last_result is not None and window.last_result.status == "cancelled"
    written = len(list(out.rglob("*.png")))
    assert 1 <= written <= 8  # the batch in flight (4) and at most one more
    assert "Cancelled" in window.statusBar().currentMessage()
    assert "Resume" in window.protect_button.text()
    window.start_protect()  # the Resume button finishes the rest
    _wait_idle(qtbot, window)
    assert window.last_result is not None and window.last_result.status == "completed"
    assert window.last_result.reused == written
    assert len(list(out.rglob("*.png"))) == 12


def test_preview_panes_show_what_they_claim(qtbot, window: MainWindow, tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=3, per_class=4)
    window.load_folder(src)
    _wait_idle(qtbot, window)
    window.start_preview()
    _wait_idle(qtbot, window)
    assert window.preview_list.count() == 4  # a few, spread over the classes
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


def test_settings_persist_and_files_are_read_by_the_cli(qtbot, settings_store: QSettings,
                                                        errors: list[str],
                                                        tmp_path: Path) -> None:
    first = MainWindow(settings_store)
    qtbot.addWidget(first)
    first.settings_panel.eps.setValue(4)
    first.settings_panel.steps.setValue(12)
    first.settings_panel.colour_preset.setCurrentText("subtle")
    first.settings_panel.grey_robust.setChecked(False)
    first.settings_panel.pgd_augment.setChecked(False)
    first.format.setCurrentIndex(1)
    first.save_state()
    second = MainWindow(settings_store)
    qtbot.addWidget(second)
    assert second.settings_panel.eps.value() == pytest.approx(4)
    assert second.settings_panel.budget_preset.currentText() == "Light"
    assert second.settings_panel.steps.value() == 12
    assert second.settings_panel.psnr.value() == pytest.approx(32)
    assert second.format.currentData() == "keep"
    assert not second.settings_panel.grey_robust.isChecked()
    assert not second.settings_panel.pgd_augment.isChecked()
    path = tmp_path / "settings.json"
    second.write_settings_file(path)
    config = ProtectConfig.load(path, input_dir=tmp_path, output_dir=tmp_path / "o")
    assert config.steps == 12 and config.format == "keep" and not config.grey_robust
    assert not config.pgd_augment
    assert config.colour.psnr_min == pytest.approx(32)


def test_errors_are_dialogs_not_tracebacks(qtbot, window: MainWindow, errors: list[str],
                                           tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=2)
    window.load_folder(src)
    _wait_idle(qtbot, window)
    window.output_edit.setText(str(src / "inside"))
    window.start_protect()
    _wait_idle(qtbot, window)
    assert errors and "inside" in errors[-1] and "Traceback" not in errors[-1]
    assert not (src / "inside").exists()


def test_about_and_window_identity(window: MainWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(text))
    window.about()
    assert shown and "DUNE" in shown[0]
    assert "DUNE Protect" in window.windowTitle()
    assert not window.windowIcon().isNull()


def test_every_setting_has_a_tooltip(window: MainWindow) -> None:
    from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox

    widgets = [w for kind in (QAbstractSpinBox, QComboBox, QCheckBox)
               for w in window.settings_panel.findChildren(kind)]
    missing = [type(w).__name__ for w in widgets if not w.toolTip()]
    assert len(widgets) > 20
    assert not missing


def test_a_budget_preset_scales_the_step_with_the_budget(qtbot, settings_store: QSettings,
                                                         errors: list[str]) -> None:
    window = MainWindow(settings_store)
    qtbot.addWidget(window)
    panel = window.settings_panel
    assert (panel.eps.value(), panel.step_size.value()) == pytest.approx((8, 0.5))
    panel.budget_preset.setCurrentText("Strong")
    assert (panel.eps.value(), panel.step_size.value()) == pytest.approx((16, 1.0))
    assert panel.steps.value() * panel.step_size.value() >= panel.eps.value()
    panel.budget_preset.setCurrentText("Light")
    assert (panel.eps.value(), panel.step_size.value()) == pytest.approx((4, 0.25))
    panel.eps.setValue(6)  # a custom budget leaves the step as the user set it
    assert panel.budget_preset.currentText() == "Custom"
    assert panel.step_size.value() == pytest.approx(0.25)


def test_the_colour_pattern_round_trips_and_a_field_is_shown_cell_by_cell(
        qtbot, settings_store: QSettings, tmp_path: Path) -> None:
    window = MainWindow(settings_store)
    qtbot.addWidget(window)
    panel = window.settings_panel
    assert panel.settings()["colour_grid"] == 1
    panel.set_settings({"colour_grid": 5})  # a value the menu lacks still round-trips
    assert panel.settings()["colour_grid"] == 5
    panel.colour_grid.setCurrentIndex(panel.colour_grid.findData(2))
    path = tmp_path / "settings.json"
    window.write_settings_file(path)
    assert ProtectConfig.load(path, input_dir=tmp_path, output_dir=tmp_path / "o").colour_grid == 2
    values = np.array([0.1, -0.1, 0.0, 0.2,  # red at the four corners, then green, blue
                       0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.2])
    assert describe_colour(values) == "Colour field, 2 x 2 points from -51.0 to +51.0 /255"
    field = np.zeros((5, 4, 3), dtype=np.float32)
    field[0, 0] = (0.1, 0.0, 0.0)
    field[4, 3] = (0.2, 0.0, -0.2)
    swatch, gain = amplify_colour(field)
    assert swatch.shape == (5, 4, 3) and gain == pytest.approx(2.5)
    assert swatch[0, 0, 0] == pytest.approx(0.75) and swatch[2, 2, 0] == pytest.approx(0.5)
    assert swatch[4, 3, 0] == pytest.approx(1.0) and swatch[4, 3, 2] == pytest.approx(0.0)
