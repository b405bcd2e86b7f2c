"""Shared fixtures for the app's tests: a real window, offscreen, with tiny engine settings
and error dialogs captured instead of shown."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox

from dune_gui.gui.main_window import MainWindow
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


def drop(window: MainWindow, folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.task is None, timeout=TIMEOUT)


def load(qtbot, window: MainWindow, folder: Path) -> None:
    window.load_folder(folder)
    wait_idle(qtbot, window)


def start_protect(qtbot, window: MainWindow, tmp_path: Path, classes: int = 3,
                  per_class: int = 4) -> Path:
    """Load a tiny real folder, choose an output folder and press Protect; returns the
    output folder (the run is in progress)."""
    load(qtbot, window, make_labeled_folder(tmp_path / "in", classes=classes,
                                            per_class=per_class))
    out = tmp_path / "out"
    window.output_edit.setText(str(out))
    window.start_protect()
    assert window.task is not None
    return out
