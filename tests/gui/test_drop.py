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
    assert panel.classes.topLevelItemCount() == 3
    assert [panel.classes.topLevelItem(i).text(1) for i in range(3)] == ["4", "4", "4"]
    assert panel.thumbs.count() == 4
    assert panel.skipped.count() == 1 and "not an image" in panel.skipped.item(0).text()
    assert window.output_edit.text().endswith("in-protected")


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
