"""Render README screenshots of the real window (run under Xvfb or any display).

    xvfb-run -s "-screen 0 1600x1000x24" python packaging/screenshots.py docs-out/

Loads the bundled sample folder, previews two images with the real engine (Strong budget, a
2 x 2 colour field: the settings the README's verification measures) and saves the window
after each step.
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
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    app.setWindowIcon(app_icon())
    store = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(store)
    window.resize(1500, 900)
    window.show()
    panel = window.settings_panel
    panel.budget_preset.setCurrentText("Strong")
    panel.colour_grid.setCurrentIndex(panel.colour_grid.findData(2))
    panel.iterations.setValue(5)
    panel.steps.setValue(10)
    panel.step_size.setValue(4.0)
    window.load_folder(sample_folder())

    def wait_then(fn):  # poll until the worker is idle, then run fn
        def poll() -> None:
            if window.task is None:
                fn()
            else:
                QTimer.singleShot(200, poll)
        QTimer.singleShot(200, poll)

    def after_scan() -> None:
        window.grab().save(str(out / "main-window.png"))
        window.start_preview()
        wait_then(after_preview)

    def after_preview() -> None:
        window.preview_list.setCurrentRow(1)
        QTimer.singleShot(300, finish)

    def finish() -> None:
        window.grab().save(str(out / "preview.png"))
        app.quit()

    wait_then(after_scan)
    app.exec()


if __name__ == "__main__":
    main()
