"""Verify: train fresh victims on the protected copy and show how they do on clean images."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..engine import (
    DEFENCES,
    PEERS,
    EvaluationReport,
    VerificationEstimate,
    plain_summary,
)


def as_sentence(text: str) -> str:
    """An engine note (a clause in a report's list) as a sentence in running text."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def rough_duration(seconds: float) -> str:
    """An estimate as precise as it is: whole minutes under an hour, five minutes above;
    under a minute and a half, ten seconds."""
    if seconds < 90:
        return f"{max(10, round(seconds / 10) * 10)} s"
    if round(seconds / 60) < 60:
        return f"{round(seconds / 60)} min"
    minutes = round(seconds / 300) * 5
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes % 60 else f"{minutes // 60} h"


class VerifyPanel(QWidget):
    run_requested = Signal()
    options_changed = Signal()  # the victims to train changed: the time estimate is stale

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        intro = QLabel("Does the protection work? Verification trains a fresh classifier on "
                       "the protected copy and one on your clean folder, and tests both on "
                       "clean images held out from your folder. Lower accuracy on the "
                       "protected copy = stronger protection.")
        intro.setWordWrap(True)
        defences = QGroupBox("Adversary defences to try")
        grid = QGridLayout(defences)
        self.defence_boxes: dict[str, QCheckBox] = {}
        for i, (name, d) in enumerate(DEFENCES.items()):
            box = QCheckBox(name)
            box.setToolTip(d.description)
            box.setChecked(name in ("none", "jpeg10", "grayscale"))
            self.defence_boxes[name] = box
            box.toggled.connect(self.options_changed)
            grid.addWidget(box, i // 4, i % 4)
        peers = QGroupBox("Compare with")
        row = QHBoxLayout(peers)
        self.peer_boxes: dict[str, QCheckBox] = {}
        tips = {"lsp": "LSP: class-wise linearly separable patches, as strong as your colour "
                       "preset allows (same PSNR)",
                "ops": "OPS: one-pixel shortcut", "spatial": "DUNE spatial branch only",
                "colour": "DUNE colour branch only"}
        for name in PEERS:
            box = QCheckBox(name)
            box.setToolTip(tips.get(name, name))
            box.setChecked(name in ("lsp", "ops"))
            self.peer_boxes[name] = box
            box.toggled.connect(self.options_changed)
            row.addWidget(box)
        opts = QHBoxLayout()
        self.arch = QComboBox()
        self.arch.addItems(["small", "mobilenet", "resnet18", "lite2", "lite2-probe"])
        self.arch.setToolTip("The model an adversary trains: small is fast on a CPU; "
                             "mobilenet is not in the default surrogate ensemble (measures "
                             "transfer); resnet18 is the paper's; lite2 fine-tunes an "
                             "ImageNet-pretrained network and lite2-probe trains a linear "
                             "layer on its features, what a scraper of photos would do "
                             "(slow on a CPU)")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 300)
        self.epochs.setValue(30)
        self.epochs.setToolTip("Victim training epochs. Fewer finish sooner but leave the "
                               "victim under-trained, which flatters the protection; "
                               "train until the clean model stops improving")
        self.run = QPushButton("Run verification")
        self.run.setToolTip("Needs a finished protected output folder")
        self.run.clicked.connect(self.run_requested)
        self.arch.currentIndexChanged.connect(self.options_changed)
        self.epochs.valueChanged.connect(self.options_changed)
        self.estimate = QLabel()
        self.estimate.setToolTip("Training time of the victims on this machine, from the last "
                                 "verification with the same victim, or timed on a small batch "
                                 "when there was none. Victims trained before on the same "
                                 "images are reused and cost nothing")
        for w in (QLabel("Victim"), self.arch, QLabel("Epochs"), self.epochs, self.run,
                  self.estimate):
            opts.addWidget(w)
        opts.addStretch(1)
        self.table = QTableWidget()
        self.plot = QLabel()
        self.plot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.tradeoff = QLabel()  # accuracy against distortion, when the report knows it
        self.tradeoff.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.tradeoff.setVisible(False)
        plots = QWidget()
        plots_layout = QVBoxLayout(plots)
        plots_layout.addWidget(self.plot)
        plots_layout.addWidget(self.tradeoff)
        plot_area = QScrollArea()
        plot_area.setWidget(plots)
        plot_area.setWidgetResizable(True)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        for w in (intro, defences, peers):
            layout.addWidget(w)
        layout.addLayout(opts)
        layout.addWidget(self.result)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(plot_area, 2)

    def chosen(self) -> tuple[tuple[str, ...], tuple[str, ...], str, int]:
        return (tuple(n for n, b in self.defence_boxes.items() if b.isChecked()) or ("none",),
                tuple(n for n, b in self.peer_boxes.items() if b.isChecked()),
                self.arch.currentText(), self.epochs.value())

    def show_estimate(self, estimate: VerificationEstimate | None, problem: str = "") -> None:
        """The time the chosen verification will take, next to its button."""
        if estimate is None:
            self.estimate.setText(problem)
            return
        victims = f"{estimate.victims} victim{'s' if estimate.victims != 1 else ''}"
        reused = (f"{estimate.reused} result{'s' if estimate.reused != 1 else ''} from "
                  "earlier checks reused")
        if not estimate.victims and not estimate.excludes_ablations:
            self.estimate.setText(f"Nothing to train: {reused}")
            return
        if estimate.seconds is None:
            text = f"{victims}; time known once the current run ends"
        else:
            text = f"about {rough_duration(estimate.seconds)} for {victims}"
        if estimate.excludes_ablations:
            text += ", plus generating the ablations"
        if estimate.reused:
            text += f" ({reused})"
        self.estimate.setText(text)

    def show_report(self, report: EvaluationReport, report_dir: Path) -> None:
        trains = list(dict.fromkeys(r["train"] for r in report.runs))
        defences = list(dict.fromkeys(r["defence"] for r in report.runs))
        self.table.clear()
        self.table.setRowCount(len(trains))
        self.table.setColumnCount(len(defences))
        self.table.setHorizontalHeaderLabels(defences)
        self.table.setVerticalHeaderLabels(trains)
        for r in report.runs:
            item = QTableWidgetItem(f"{r['test_accuracy']:.1%}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setItem(trains.index(r["train"]), defences.index(r["defence"]), item)
        self.table.resizeColumnsToContents()
        sentences = plain_summary(report)
        notes = " ".join(as_sentence(note) for note in report.notes)
        self.result.setText("<b>" + (sentences[0] if sentences else "No result.") + "</b>"
                            + "".join(f"<br>{s}" for s in sentences[1:]))
        self.summary.setText(f"The table: accuracy on new clean images (lower = better "
                             f"protected; chance {report.chance:.1%}). {notes} Full report: "
                             f"{report_dir}")
        png = report_dir / "report.png"
        if png.exists():
            self.plot.setPixmap(QPixmap(str(png)))
        tradeoff = report_dir / "tradeoff.png"
        self.tradeoff.setVisible(tradeoff.exists())
        if tradeoff.exists():
            self.tradeoff.setPixmap(QPixmap(str(tradeoff)))
