"""The settings a user sees: one choice of protection level first, every other setting in
an Advanced section (generated from the engine's settings table) that remembers whether it
was open."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..engine import (
    ARCHITECTURES,
    AUTO_ENSEMBLE,
    AUTO_ENSEMBLE_HELP,
    DEFAULT_PRESET,
    PRESETS,
    preset_of,
)
from .settings_form import SettingsForm, changed_signals

CUSTOM = "custom"


class SettingsPanel(QWidget):
    def __init__(self, cuda_name: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        plain = QGroupBox("Protection")
        form = QFormLayout(plain)
        self.preset = QComboBox()
        for name, p in PRESETS.items():
            self.preset.addItem(p.title, name)
        self.preset.addItem("Custom (see Advanced)", CUSTOM)
        self.preset.setToolTip("How strong the protection is, and so how visible: stronger "
                               "levels change the pictures more")
        self.preset.setAccessibleName("Protection level")
        self.preset_help = QLabel()
        self.preset_help.setWordWrap(True)
        form.addRow("Level", self.preset)
        form.addRow("", self.preset_help)
        layout.addWidget(plain)

        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced settings")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setToolTip("Every setting of the method, the surrogate ensemble, "
                                        "the output and the run")
        self.advanced_toggle.toggled.connect(self._show_advanced)
        layout.addWidget(self.advanced_toggle)
        no_cuda = "CPU: no CUDA device found"
        labels = {"device": {"auto": f"Auto ({cuda_name or no_cuda})", "cpu": "CPU",
                             "cuda": f"CUDA ({cuda_name})" if cuda_name
                             else "CUDA (not available)"}}
        tips = {n: d for n, (d, _) in ARCHITECTURES.items()}
        tips[AUTO_ENSEMBLE] = f"Chosen for your folder: {AUTO_ENSEMBLE_HELP}"
        self.form = SettingsForm(tips, labels)
        layout.addWidget(self.form)
        layout.addStretch(1)
        self._show_advanced(False)

        self.preset.currentIndexChanged.connect(self._apply_preset)
        for widget in self.form.widgets.values():
            for signal in changed_signals(widget):
                signal.connect(self._sync_preset)
        self.select_preset(DEFAULT_PRESET)

    # ---- the plain choice ------------------------------------------------------------
    def select_preset(self, name: str) -> None:
        self.preset.setCurrentIndex(self.preset.findData(name))
        self._apply_preset()

    def _apply_preset(self) -> None:
        name = self.preset.currentData()
        if name in PRESETS:
            self.form.set_values(PRESETS[name].values)
        self._sync_preset()

    def _sync_preset(self) -> None:
        name = preset_of(self.form.values()) or CUSTOM
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(self.preset.findData(name))
        self.preset.blockSignals(False)
        self.preset_help.setText(PRESETS[name].summary if name in PRESETS else
                                 "Your own settings: see Advanced.")

    def _show_advanced(self, shown: bool) -> None:
        self.form.setVisible(shown)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if shown
                                          else Qt.ArrowType.RightArrow)

    # ---- config round trip -----------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The panel's values as ProtectConfig keyword arguments (no folders)."""
        return self.form.values()

    def set_settings(self, values: dict[str, Any]) -> None:
        self.form.set_values(values)
        self._sync_preset()
