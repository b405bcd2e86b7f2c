"""Render the README's screenshots of the real window (run under Xvfb or any display).

    xvfb-run -s "-screen 0 1600x1000x24" python packaging/screenshots.py OUT [FOLDER] [LEVEL]

Loads FOLDER (default: the bundled sample), previews two images with the real engine at
LEVEL (default: the app's default, Invisible) and saves the window after each step: the
folder with its thumbnail grid, the preview fitted, at 100%, and the difference view; then
starts Protect and saves the window once the whole run's time left is shown (run.png).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from dune_gui.gui.main_window import MainWindow, app_icon
from dune_gui.resources import sample_folder


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")
    folder = Path(sys.argv[2]) if len(sys.argv) > 2 else sample_folder()
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    app.setWindowIcon(app_icon())
    store = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(store)
    window.resize(1500, 940)
    window.show()
    if len(sys.argv) > 3:
        window.settings_panel.select_preset(sys.argv[3])
    # a short surrogate training keeps the screenshot run to a minute on a CPU
    window.settings_panel.set_settings({"epochs": 4, "checkpoints": 1, "iterations": 4})
    window.load_folder(folder)

    def wait_then(fn, delay: int = 300):  # poll until the worker is idle, then run fn
        def poll() -> None:
            if window.task is None:
                QTimer.singleShot(delay, fn)
            else:
                QTimer.singleShot(200, poll)
        QTimer.singleShot(200, poll)

    def after_scan() -> None:
        window.grab().save(str(out / "main-window.png"))
        grid = window.folder_panel.thumbs
        selection = grid.selectionModel()
        for row in (0, grid.count() // 2):
            selection.select(grid.thumbnails.index(row), selection.SelectionFlag.Select)
        window.start_preview()
        wait_then(after_preview)

    def after_preview() -> None:
        window.preview_list.setCurrentRow(0)
        QTimer.singleShot(300, fitted)

    def fitted() -> None:
        window.grab().save(str(out / "preview.png"))
        window.preview_panel.actual_size()
        QTimer.singleShot(300, actual)

    def actual() -> None:
        window.grab().save(str(out / "preview-100.png"))
        window.preview_panel.fit()
        window.preview_panel.difference.setChecked(True)
        QTimer.singleShot(300, finish)

    def finish() -> None:
        window.grab().save(str(out / "preview-difference.png"))
        window.output_edit.setText(tempfile.mkdtemp(prefix="dune-shots-out-"))
        # small batches, so that a run over a few dozen photos is caught in the middle
        window.settings_panel.set_settings({"batch_size": 4})
        window.start_protect()
        QTimer.singleShot(200, running)

    def running() -> None:  # once the whole run's time left is known
        if window.task is None or window.eta_label.text().startswith("about"):
            window.grab().save(str(out / "run.png"))
            window.cancel_task()
            wait_then(app.quit)
        else:
            QTimer.singleShot(200, running)

    wait_then(after_scan, delay=2000)  # the grid's first thumbnails decode meanwhile
    app.exec()


if __name__ == "__main__":
    main()
