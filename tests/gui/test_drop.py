"""Loading a folder: drop, scan off the GUI thread, problems in the engine's words."""

from __future__ import annotations

from pathlib import Path

from dune_gui.gui.main_window import MainWindow
from tests.conftest import make_labeled_folder
from tests.gui.conftest import drop, load, wait_idle


def test_dropping_a_folder_scans_it_off_the_gui_thread(qtbot, window: MainWindow,
                                                       tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=3, per_class=4)
    (src / "airplane" / "notes.txt").write_text("x")
    drop(window, src)
    wait_idle(qtbot, window)
    panel = window.folder_panel
    assert [panel.class_filter.itemText(i) for i in range(4)] == [
        "All classes (12)", "airplane (4)", "automobile (4)", "bird (4)"]
    assert panel.thumbs.count() == 12
    panel.class_filter.setCurrentIndex(2)
    assert panel.thumbs.count() == 4
    assert panel.skipped.count() == 1 and "not an image" in panel.skipped.item(0).text()
    assert window.output_edit.text().endswith("in-protected")


def test_the_grid_decodes_thumbnails_off_the_gui_thread_as_they_are_shown(
        qtbot, window: MainWindow, tmp_path: Path) -> None:
    from PySide6.QtCore import Qt

    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=3)
    load(qtbot, window, src)
    grid = window.folder_panel.thumbs
    model = grid.thumbnails
    index = model.index(0)
    assert model.data(index, Qt.ItemDataRole.DisplayRole) == "0000.jpg"
    model.data(index, Qt.ItemDataRole.DecorationRole)  # asks for it: the view is drawing it
    qtbot.waitUntil(lambda: model.data(index, Qt.ItemDataRole.UserRole) in model.cache,
                    timeout=10_000)
    assert model.cache[model.data(index, Qt.ItemDataRole.UserRole)].width() == 32
    grid.selectionModel().select(index, grid.selectionModel().SelectionFlag.Select)
    assert window.folder_panel.selected_images() == [model.shown[0]]


def test_one_class_folder_shows_the_engines_reason(qtbot, window: MainWindow,
                                                   tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=1, per_class=2)
    load(qtbot, window, src)
    assert "needs at least two" in window.folder_panel.header.text()


def test_empty_class_shows_the_engines_reason(qtbot, window: MainWindow, tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=2)
    (src / "zzz-empty").mkdir()
    load(qtbot, window, src)
    assert "'zzz-empty' has no usable image" in window.folder_panel.header.text()
