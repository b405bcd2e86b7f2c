"""All protection settings as widgets, with presets that explain their trade-off."""

from __future__ import annotations

import dataclasses
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
    QLabel,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine import ARCHITECTURES, COLOUR_PRESETS, ColourConstraints, ProtectConfig

BUDGET_PRESETS = {
    "Light": (4.0, "4/255: hardest to see; weaker against JPEG and noise defences"),
    "Standard": (8.0, "8/255: the paper's budget; invisible on most photos at normal size. "
                      "Measured on CIFAR-10: a model trained on the copies 16% on clean "
                      "images (chance 10%), 31% if it normalises each image's colours"),
    "Strong": (16.0, "16/255: faint grain visible on flat areas. With the strong colour "
                     "preset and the 2 x 2 colour field (Pattern, below) as much distortion "
                     "as LSP's patches (19.4 dB) and the strongest protection measured: "
                     "CIFAR-10 models at chance, 11.8% on average under ten defences"),
}
COLOUR_TEXT = {
    "subtle": "barely visible cast; the colour shortcut is weakest",
    "balanced": "a mild tint; a good compromise for portfolios",
    "strong": "the paper's limits: offsets up to ~35/255 per channel, a visible cast, "
              "strongest protection",
}
COLOUR_GRIDS = {1: "one cast (paper)", 2: "2 x 2 field", 3: "3 x 3 field", 4: "4 x 4 field"}
MODES = {"DUNE (spatial + colour)": "dune", "Spatial only": "spatial", "Colour only": "colour"}


def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def _dspin(lo: float, hi: float, value: float, step: float, decimals: int, tip: str,
           suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    if suffix:
        box.setSuffix(suffix)
    return box


class SettingsPanel(QWidget):
    changed = Signal()

    def __init__(self, cuda_name: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        d = ProtectConfig(input_dir=Path("."), output_dir=Path("."))
        layout = QVBoxLayout(self)

        budget = QGroupBox("Perturbation budget (spatial branch)")
        form = QFormLayout(budget)
        self.budget_preset = QComboBox()
        self.budget_preset.addItems([*BUDGET_PRESETS, "Custom"])
        self.budget_preset.setToolTip("How far each pixel may move (L-inf), from subtle to "
                                      "robust. Pick Custom to type your own value.")
        self.budget_help = QLabel()
        self.budget_help.setWordWrap(True)
        self.eps = _dspin(0.5, 64, d.eps * 255, 0.5, 1,
                          "Largest change of any pixel by the spatial perturbation", " /255")
        self.steps = _spin(1, 500, d.steps, "PGD steps: more steps fit the perturbation better "
                                            "but cost proportionally more time")
        self.step_size = _dspin(0.05, 16, d.step_size * 255, 0.25, 2,
                                "PGD step size. 10 steps of 2/255 protect about as well as 30 "
                                "of 0.5/255 at a third of the time", " /255")
        form.addRow("Preset", self.budget_preset)
        form.addRow("", self.budget_help)
        form.addRow("Budget (eps)", self.eps)
        form.addRow("Steps", self.steps)
        form.addRow("Step size", self.step_size)
        layout.addWidget(budget)

        method = QGroupBox("Method")
        form = QFormLayout(method)
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.mode.setToolTip("DUNE uses both branches; the others are the paper's ablations")
        self.label_offset = _spin(1, 999, d.label_offset,
                                  "Shift s of the planted label: class y is steered toward "
                                  "class (y + s) mod K. Must not be a multiple of K")
        self.grey_robust = QCheckBox("Survive grayscale training")
        self.grey_robust.setChecked(d.grey_robust)
        self.grey_robust.setToolTip(
            "Also optimise both perturbations through a grayscale view of each image, so a "
            "model trained on grayscale copies still learns the shortcut. Same run time")
        self.pgd_augment = QCheckBox("Optimise through flips and shifts")
        self.pgd_augment.setChecked(d.pgd_augment)
        self.pgd_augment.setToolTip(
            "Each PGD step sees the image through a random flip and a shift of up to 2 "
            "pixels, the augmentation a model's training applies, so the perturbation keeps "
            "working on what the model sees. Same run time")
        form.addRow("Mode", self.mode)
        form.addRow("Label shift", self.label_offset)
        form.addRow("", self.grey_robust)
        form.addRow("", self.pgd_augment)
        layout.addWidget(method)

        colour = QGroupBox("Colour offset limits")
        form = QFormLayout(colour)
        self.colour_preset = QComboBox()
        self.colour_preset.addItems([*COLOUR_PRESETS, "custom"])
        self.colour_preset.setCurrentText("strong")
        self.colour_preset.setToolTip("How visible the per-class colour cast may be")
        self.colour_help = QLabel()
        self.colour_help.setWordWrap(True)
        self.psnr = _dspin(10, 60, d.colour.psnr_min, 1, 1,
                           "Minimum PSNR of each image after the colour offset", " dB")
        self.ssim = _dspin(0, 1, d.colour.ssim_min, 0.01, 3, "Minimum SSIM after the offset")
        self.delta_e = _dspin(0.5, 100, d.colour.delta_e_max, 0.5, 1,
                              "Maximum mean CIEDE2000 colour difference (1 = just noticeable)")
        form.addRow("Preset", self.colour_preset)
        form.addRow("", self.colour_help)
        form.addRow("PSNR at least", self.psnr)
        form.addRow("SSIM at least", self.ssim)
        form.addRow("Colour difference at most", self.delta_e)
        self.colour_grid = QComboBox()
        for grid, label in COLOUR_GRIDS.items():
            self.colour_grid.addItem(label, grid)
        self.colour_grid.setCurrentIndex(self.colour_grid.findData(d.colour_grid))
        self.colour_grid.setToolTip(
            "One colour cast per class (the paper's), or a field: G x G casts pinned to the "
            "image's corners and blended in between, like uneven lighting. Same limits, about "
            "0.6 dB more distortion; the 2 x 2 field protected best in every test (README), "
            "above all against JPEG, blur, pixel jitter and per-image normalisation")
        form.addRow("Pattern", self.colour_grid)
        self.particles = _spin(2, 200, d.particles, "Particles of the swarm search")
        self.iterations = _spin(1, 200, d.iterations, "Iterations of the swarm search")
        form.addRow("Swarm particles", self.particles)
        form.addRow("Swarm iterations", self.iterations)
        layout.addWidget(colour)

        ens = QGroupBox("Surrogate ensemble (trained on your folder)")
        form = QFormLayout(ens)
        self.arch_boxes: dict[str, QCheckBox] = {}
        arch_row = QWidget()
        arch_layout = QVBoxLayout(arch_row)
        arch_layout.setContentsMargins(0, 0, 0, 0)
        for name, (desc, _) in ARCHITECTURES.items():
            box = QCheckBox(name)
            box.setToolTip(desc)
            box.setChecked(name in d.architectures)
            self.arch_boxes[name] = box
            arch_layout.addWidget(box)
        self.checkpoints = _spin(1, 20, d.checkpoints,
                                 "Checkpoints kept per architecture (spread over training)")
        self.epochs = _spin(1, 500, d.epochs, "Training epochs of each surrogate")
        self.working_size = _spin(8, 512, d.working_size,
                                  "Resolution the surrogates see (32 for small images, up to "
                                  "224 for photos); outputs always keep their own size")
        self.surrogate_list = QListWidget()
        self.surrogate_list.setToolTip("Extra surrogates: state dicts, TorchScript or ONNX "
                                       "files (never unpickled code)")
        self.surrogate_list.setMaximumHeight(60)
        files_row = QWidget()
        files_layout = QHBoxLayout(files_row)
        files_layout.setContentsMargins(0, 0, 0, 0)
        add = QPushButton("Add…")
        add.setToolTip("Add a surrogate model file")
        add.clicked.connect(self._add_surrogate)
        remove = QPushButton("Remove")
        remove.setToolTip("Remove the selected surrogate file")
        remove.clicked.connect(lambda: [self.surrogate_list.takeItem(self.surrogate_list.row(i))
                                        for i in self.surrogate_list.selectedItems()])
        files_layout.addWidget(add)
        files_layout.addWidget(remove)
        form.addRow("Architectures", arch_row)
        form.addRow("Checkpoints each", self.checkpoints)
        form.addRow("Training epochs", self.epochs)
        form.addRow("Working size", self.working_size)
        form.addRow("Surrogate files", self.surrogate_list)
        form.addRow("", files_row)
        layout.addWidget(ens)

        run = QGroupBox("Run")
        form = QFormLayout(run)
        self.device = QComboBox()
        auto = f"Auto ({cuda_name})" if cuda_name else "Auto (CPU: no CUDA device found)"
        self.device.addItem(auto, "auto")
        self.device.addItem("CPU", "cpu")
        self.device.addItem(f"CUDA ({cuda_name})" if cuda_name else "CUDA (not available)",
                            "cuda")
        if not cuda_name:
            self.device.model().item(2).setEnabled(False)
        self.device.setToolTip("Where the work runs; CUDA is used automatically when present")
        self.seed = _spin(0, 2**31 - 1, d.seed, "The same seed gives byte-identical outputs")
        form.addRow("Device", self.device)
        form.addRow("Seed", self.seed)
        layout.addWidget(run)
        layout.addStretch(1)

        self.budget_preset.currentTextChanged.connect(self._apply_budget_preset)
        self.eps.valueChanged.connect(self._sync_budget_preset)
        self.colour_preset.currentTextChanged.connect(self._apply_colour_preset)
        for box in (self.psnr, self.ssim, self.delta_e):
            box.valueChanged.connect(self._sync_colour_preset)
        self._extra: dict[str, Any] = {}
        self._sync_budget_preset()
        self._sync_colour_preset()
        for w in self.findChildren(QWidget):
            for sig in ("valueChanged", "currentIndexChanged", "toggled"):
                if hasattr(w, sig):
                    getattr(w, sig).connect(self.changed)

    # ---- presets ---------------------------------------------------------------------
    def _apply_budget_preset(self, name: str) -> None:
        if name in BUDGET_PRESETS:
            before, after = self.eps.value(), BUDGET_PRESETS[name][0]
            self.eps.setValue(after)
            # the step keeps its fraction of the budget: 30 steps of 0.5/255 cannot use 16/255
            self.step_size.setValue(self.step_size.value() * after / before)
        self._sync_budget_preset()

    def _sync_budget_preset(self) -> None:
        value = self.eps.value()
        match = next((n for n, (v, _) in BUDGET_PRESETS.items() if abs(v - value) < 1e-6),
                     "Custom")
        self.budget_preset.blockSignals(True)
        self.budget_preset.setCurrentText(match)
        self.budget_preset.blockSignals(False)
        self.budget_help.setText(BUDGET_PRESETS[match][1] if match in BUDGET_PRESETS
                                 else f"{value:g}/255, custom")

    def _apply_colour_preset(self, name: str) -> None:
        if name in COLOUR_PRESETS:
            c = COLOUR_PRESETS[name]
            for box, v in ((self.psnr, c.psnr_min), (self.ssim, c.ssim_min),
                           (self.delta_e, c.delta_e_max)):
                box.blockSignals(True)
                box.setValue(v)
                box.blockSignals(False)
        self._sync_colour_preset()

    def _sync_colour_preset(self) -> None:
        current = ColourConstraints(self.psnr.value(), self.ssim.value(), self.delta_e.value())
        match = next((n for n, c in COLOUR_PRESETS.items() if c == current), "custom")
        self.colour_preset.blockSignals(True)
        self.colour_preset.setCurrentText(match)
        self.colour_preset.blockSignals(False)
        self.colour_help.setText(COLOUR_TEXT.get(match, "custom limits"))

    def _add_surrogate(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Add surrogate models", "", "Models (*.pt *.pth *.onnx);;All files (*)")
        for p in paths:
            self.surrogate_list.addItem(p)

    # ---- config round trip -------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The panel's values as ProtectConfig keyword arguments (no folders)."""
        values = dict(self._extra)
        values.update(
            mode=MODES[self.mode.currentText()], eps=self.eps.value() / 255,
            step_size=self.step_size.value() / 255, steps=self.steps.value(),
            label_offset=self.label_offset.value(), grey_robust=self.grey_robust.isChecked(),
            pgd_augment=self.pgd_augment.isChecked(),
            architectures=tuple(n for n, b in self.arch_boxes.items() if b.isChecked()),
            checkpoints=self.checkpoints.value(), epochs=self.epochs.value(),
            surrogate_files=tuple(self.surrogate_list.item(i).text()
                                  for i in range(self.surrogate_list.count())),
            working_size=self.working_size.value(),
            colour=ColourConstraints(self.psnr.value(), self.ssim.value(),
                                     self.delta_e.value()),
            colour_grid=int(self.colour_grid.currentData()),
            particles=self.particles.value(), iterations=self.iterations.value(),
            device=self.device.currentData(), seed=self.seed.value())
        return values

    def set_settings(self, values: dict[str, Any]) -> None:
        """Apply ProtectConfig-style values (e.g. from a settings file); unknown-to-the-panel
        keys (batch sizes, ...) are kept and passed through."""
        d = dataclasses.asdict(ProtectConfig(input_dir=Path("."), output_dir=Path(".")))
        shown = {"mode", "eps", "step_size", "steps", "label_offset", "grey_robust",
                 "pgd_augment", "architectures", "checkpoints", "epochs", "surrogate_files",
                 "working_size", "colour", "colour_grid", "particles", "iterations", "device",
                 "seed"}
        self._extra = {k: v for k, v in values.items()
                       if k in d and k not in shown and k not in ("input_dir", "output_dir")}
        v = {**d, **{k: values[k] for k in values if k in shown}}
        self.mode.setCurrentText(next(n for n, m in MODES.items() if m == v["mode"]))
        self.eps.setValue(float(v["eps"]) * 255)
        self.step_size.setValue(float(v["step_size"]) * 255)
        self.steps.setValue(int(v["steps"]))
        self.label_offset.setValue(int(v["label_offset"]))
        self.grey_robust.setChecked(bool(v["grey_robust"]))
        self.pgd_augment.setChecked(bool(v["pgd_augment"]))
        for name, box in self.arch_boxes.items():
            box.setChecked(name in v["architectures"])
        self.checkpoints.setValue(int(v["checkpoints"]))
        self.epochs.setValue(int(v["epochs"]))
        self.surrogate_list.clear()
        for f in v["surrogate_files"]:
            self.surrogate_list.addItem(str(f))
        self.working_size.setValue(int(v["working_size"]))
        colour = v["colour"]
        if isinstance(colour, ColourConstraints):
            colour = dataclasses.asdict(colour)
        self.psnr.setValue(float(colour["psnr_min"]))
        self.ssim.setValue(float(colour["ssim_min"]))
        self.delta_e.setValue(float(colour["delta_e_max"]))
        grid = int(v["colour_grid"])
        if self.colour_grid.findData(grid) < 0:  # e.g. a settings file with an 8 x 8 field
            self.colour_grid.addItem(f"{grid} x {grid} field", grid)
        self.colour_grid.setCurrentIndex(self.colour_grid.findData(grid))
        self.particles.setValue(int(v["particles"]))
        self.iterations.setValue(int(v["iterations"]))
        index = self.device.findData(v["device"])
        self.device.setCurrentIndex(max(0, index))
        self.seed.setValue(int(v["seed"]))
        self._sync_budget_preset()
        self._sync_colour_preset()
