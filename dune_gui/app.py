"""dune-gui: start the desktop app, optionally on a folder (the bundled sample otherwise)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    from PySide6.QtCore import QCoreApplication, QTimer
    from PySide6.QtWidgets import QApplication

    from . import APP_NAME, __version__
    from .gui.main_window import MainWindow, app_icon
    from .resources import sample_folder

    args = list(sys.argv[1:] if argv is None else argv)
    QCoreApplication.setOrganizationName("DUNE Protect")
    QCoreApplication.setApplicationName(APP_NAME)
    QCoreApplication.setApplicationVersion(__version__)
    app = QApplication.instance() or QApplication([sys.argv[0], *args])
    app.setWindowIcon(app_icon())
    window = MainWindow()
    window.show()
    folder = Path(args[0]) if args and not args[0].startswith("-") else sample_folder()
    if folder.is_dir():
        QTimer.singleShot(0, lambda: window.load_folder(folder))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
