"""The expert settings form, generated from the engine's settings table: one widget per
setting (by its kind), its label and help from the table, grouped like the table. Nothing
here names a setting: a new row in the table appears in the form by itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine import DEFAULTS, SETTINGS, Setting, unused_settings

GROUP_TITLES = {"spatial": "Spatial perturbation", "method": "Method",
                "pattern": "Class pattern (against pretrained models)",
                "colour": "Colour branch", "ensemble": "Surrogate ensemble (trained on your "
                "folder)", "output": "Output", "run": "Run"}
INT_LIMIT = 2**31 - 1


class NamesBox(QWidget):
    """A tuple of names chosen from a fixed list: one checkbox each. A name the settings
    table marks as standing `alone` (auto: the engine chooses the names) clears the others
    when ticked, and is cleared when another is ticked. `toggled` follows any box, so
    whoever watches the form (the level it matches) sees a change of names."""

    toggled = Signal(bool)

    def __init__(self, choices: tuple[str, ...], tips: dict[str, str],
                 alone: tuple[str, ...] = ()) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.alone = alone
        self.boxes = {name: QCheckBox(name) for name in choices}
        for name, box in self.boxes.items():
            box.setToolTip(tips.get(name, name))
            layout.addWidget(box)
            box.toggled.connect(lambda on, name=name: self._keep_alone(name, on))
            box.toggled.connect(self.toggled)

    def _keep_alone(self, name: str, on: bool) -> None:
        if not on:
            return
        for other, box in self.boxes.items():
            if other != name and (name in self.alone or other in self.alone):
                box.setChecked(False)

    def value(self) -> tuple[str, ...]:
        return tuple(n for n, b in self.boxes.items() if b.isChecked())

    def set_value(self, names: tuple[str, ...] | list[str]) -> None:
        for name, box in self.boxes.items():
            box.setChecked(name in names)


class FilesBox(QWidget):
    """A tuple of file paths with Add / Remove."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.files = QListWidget()
        self.files.setMaximumHeight(60)
        add = QPushButton("Add…")
        add.setToolTip(f"Add to {label.lower()}")
        add.clicked.connect(self._add)
        remove = QPushButton("Remove")
        remove.setToolTip("Remove the selected file")
        remove.clicked.connect(lambda: [self.files.takeItem(self.files.row(i))
                                        for i in self.files.selectedItems()])
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.files)
        layout.addLayout(buttons)

    def _add(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Add surrogate models", "", "Models (*.pt *.pth *.onnx);;All files (*)")
        for p in paths:
            self.files.addItem(p)

    def value(self) -> tuple[str, ...]:
        return tuple(self.files.item(i).text() for i in range(self.files.count()))

    def set_value(self, paths: tuple[str, ...] | list[str]) -> None:
        self.files.clear()
        for p in paths:
            self.files.addItem(str(p))


def make_widget(s: Setting, choice_tips: dict[str, str]) -> QWidget:
    if s.kind == "bool":
        widget: QWidget = QCheckBox(s.label)
    elif s.kind == "choice":
        widget = QComboBox()
        for choice in s.choices:
            widget.addItem(choice, choice)
    elif s.kind == "names":
        widget = NamesBox(s.choices, choice_tips, s.alone)
    elif s.kind == "files":
        widget = FilesBox(s.label)
    elif s.kind == "path":
        widget = QLineEdit()
        widget.setPlaceholderText("default")
    elif s.kind == "int":
        widget = QSpinBox()
        widget.setRange(int(s.minimum or 0), int(min(s.maximum or INT_LIMIT, INT_LIMIT)))
        if s.zero_means:
            widget.setSpecialValueText(s.zero_means)
    else:  # float, budget (shown in /255)
        widget = QDoubleSpinBox()
        scale = 255 if s.kind == "budget" else 1
        widget.setDecimals(2 if s.kind == "budget" else 3)
        low = (s.minimum if s.minimum is not None else 0.0) * scale
        high = (s.maximum if s.maximum is not None else 1e6) * scale
        widget.setRange(low, high)
        widget.setSingleStep(0.5 if s.kind == "budget" else 0.05 if high <= 1 else 1.0)
        if s.kind == "budget":
            widget.setSuffix(" /255")
    widget.setToolTip(f"{s.label}: {s.help}")
    widget.setAccessibleName(s.label)
    return widget


def read_widget(s: Setting, widget: QWidget) -> Any:
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QComboBox):
        return widget.currentData()
    if isinstance(widget, (NamesBox, FilesBox)):
        return widget.value()
    if isinstance(widget, QLineEdit):
        return Path(widget.text()) if widget.text().strip() else None
    if isinstance(widget, QSpinBox):
        return widget.value()
    assert isinstance(widget, QDoubleSpinBox)
    return widget.value() / 255 if s.kind == "budget" else widget.value()


def write_widget(s: Setting, widget: QWidget, value: Any) -> None:
    if isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QComboBox):
        index = widget.findData(value)
        if index < 0:  # e.g. a device this machine lacks, from a settings file
            widget.addItem(str(value), value)
            index = widget.findData(value)
        widget.setCurrentIndex(index)
    elif isinstance(widget, (NamesBox, FilesBox)):
        widget.set_value(tuple(value or ()))
    elif isinstance(widget, QLineEdit):
        widget.setText("" if value is None else str(value))
    elif isinstance(widget, QSpinBox):
        widget.setValue(int(value))
    elif isinstance(widget, QDoubleSpinBox):
        widget.setValue(float(value) * (255 if s.kind == "budget" else 1))


def changed_signals(widget: QWidget) -> list[Any]:
    """The signals a setting's widget emits when the user changes its value."""
    return [getattr(widget, name) for name in ("valueChanged", "currentIndexChanged",
                                               "toggled", "textChanged")
            if hasattr(widget, name)]


class SettingsForm(QWidget):
    """Every setting of the table marked for the GUI, grouped. `values()` returns
    ProtectConfig keyword arguments; settings the form does not show pass through
    `set_values` unchanged. A setting the others leave unused (the ensemble's when no
    surrogate is trained, the noise's with the targeted objective) is greyed out, and its
    tooltip says why."""

    def __init__(self, choice_tips: dict[str, str] | None = None,
                 choice_labels: dict[str, dict[Any, str]] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.widgets: dict[str, QWidget] = {}
        self.labels: dict[str, QWidget | None] = {}  # each row's label (none for a checkbox)
        self.settings = {s.name: s for s in SETTINGS if s.gui}
        self._hidden: dict[str, Any] = {}
        self._writing = False  # set_values under way: grey out once, at its end
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        forms: dict[str, QFormLayout] = {}
        for s in self.settings.values():
            if s.group not in forms:
                box = QGroupBox(GROUP_TITLES.get(s.group, s.group.capitalize()))
                forms[s.group] = QFormLayout(box)
                layout.addWidget(box)
            widget = make_widget(s, choice_tips or {})
            for value, text in (choice_labels or {}).get(s.name, {}).items():
                if isinstance(widget, QComboBox):
                    index = widget.findData(value)
                    if index >= 0:
                        widget.setItemText(index, text)
            self.widgets[s.name] = widget
            forms[s.group].addRow("" if s.kind == "bool" else s.label, widget)
            self.labels[s.name] = forms[s.group].labelForField(widget)
        self.set_values(DEFAULTS.to_dict())
        for widget in self.widgets.values():
            for signal in changed_signals(widget):
                signal.connect(self.grey_unused)

    def grey_unused(self) -> None:
        """Enable the settings these values use, grey out (and explain) the others."""
        if self._writing:
            return  # a preset writes every row: one pass when it is done, not one per row
        unused = unused_settings(self.values())
        for name, widget in self.widgets.items():
            s, why = self.settings[name], unused.get(name)
            widget.setEnabled(why is None)
            if self.labels.get(name) is not None:
                self.labels[name].setEnabled(why is None)
            widget.setToolTip(f"{s.label}: {s.help}" if why is None
                              else f"{s.label}: not used now: {why}. {s.help}")

    def values(self) -> dict[str, Any]:
        out = dict(self._hidden)
        out.update({name: read_widget(self.settings[name], w)
                    for name, w in self.widgets.items()})
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        self._writing = True
        try:
            for name, value in values.items():
                if name in self.widgets:
                    write_widget(self.settings[name], self.widgets[name], value)
                elif name not in ("input_dir", "output_dir"):
                    self._hidden[name] = value
        finally:
            self._writing = False
        self.grey_unused()
