"""Keyboard and scaling basics: every action has a shortcut, every input a name, and at
200% scaling (devicePixelRatio 2) no button text is cut off at the window's minimum size."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from dune_gui.gui.main_window import MainWindow

CHECK_AT_200_PERCENT = textwrap.dedent("""
    import os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    os.environ["QT_SCALE_FACTOR"] = "2"
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication, QPushButton, QToolButton
    app = QApplication([])
    from dune_gui.gui.main_window import MainWindow
    w = MainWindow(QSettings(sys.argv[1], QSettings.Format.IniFormat))
    w.show()
    w.resize(w.minimumSizeHint())
    app.processEvents()
    print("ratio", w.devicePixelRatio())
    cut = [b.text() for kind in (QPushButton, QToolButton) for b in w.findChildren(kind)
           if b.isVisible() and b.text()
           and b.fontMetrics().horizontalAdvance(b.text().replace("&&", "&")) > b.width()]
    print("cut", cut)
    sys.exit(1 if cut or w.devicePixelRatio() != 2 else 0)
""")


def test_every_menu_action_has_a_shortcut(window: MainWindow) -> None:
    menus = [a.menu() for a in window.menuBar().actions() if a.menu() is not None]
    actions = [a for menu in menus for a in menu.actions()
               if a.text() and not a.isSeparator() and not a.menu()]
    missing = [a.text() for a in actions if a.shortcut().isEmpty()
               and "recent" not in a.text().lower() and "/" not in a.text()]
    assert len(actions) >= 8
    assert not missing, missing


def test_inputs_have_accessible_names(window: MainWindow) -> None:
    assert window.output_edit.accessibleName() == "Output folder"
    assert window.settings_panel.preset.accessibleName() == "Protection level"
    unnamed = [name for name, w in window.settings_panel.form.widgets.items()
               if not w.accessibleName()]
    assert not unnamed


def test_no_button_text_is_cut_off_at_200_percent_and_minimum_size(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-c", CHECK_AT_200_PERCENT,
                             str(tmp_path / "s.ini")], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
