"""The loaded folder: classes with counts and thumbnails, skipped files, blocking problems."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QListWidget, QSplitter, QVBoxLayout, QWidget

from ..engine import (
    CancelToken,
    FolderError,
    class_count_problem,
    empty_classes_problem,
    scan_folder,
)
from .thumbnail_grid import ThumbnailGrid


@dataclass
class FolderSummary:
    """What the scan task hands to the GUI thread: plain data only."""

    root: Path
    classes: list[str]
    images: dict[str, list[str]]  # class -> relative paths
    skipped: list[tuple[str, str]]
    problem: str | None = None

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.images.values())


def summarise_folder(root: Path, cancel: CancelToken | None = None) -> FolderSummary:
    """Runs on a worker thread: list classes and images (nothing decoded; the grid decodes
    thumbnails as they come into view)."""
    try:
        scan = scan_folder(root)
    except FolderError as exc:
        return FolderSummary(Path(root), [], {}, [], problem=str(exc))
    images: dict[str, list[str]] = {c: [] for c in scan.classes}
    for item in scan.items:
        images[scan.classes[item.label]].append(item.rel)
    summary = FolderSummary(Path(root), scan.classes, images,
                            [(s.rel, s.reason) for s in scan.skipped])
    # the engine's own wording, so the app says what a run would refuse
    if len(scan.classes) < 2:
        summary.problem = _sentence(class_count_problem(len(scan.classes), Path(root)))
    else:
        empty = [c for c, rels in images.items() if not rels]
        if empty:
            summary.problem = _sentence(empty_classes_problem(empty))
    return summary


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


class FolderPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary: FolderSummary | None = None
        self.header = QLabel("Drop a labeled folder here (one subfolder per class), or use "
                             "File ▸ Open folder… (Ctrl+O).")
        self.header.setWordWrap(True)
        self.class_filter = QComboBox()
        self.class_filter.setToolTip("Show the images of one class, or of all")
        self.class_filter.setAccessibleName("Class filter")
        self.class_filter.currentIndexChanged.connect(self._filter_changed)
        self.thumbs = ThumbnailGrid()
        self.skipped = QListWidget()
        self.skipped.setToolTip("Files that will be skipped, with the reason")
        self.skipped_label = QLabel("Skipped files")
        split = QSplitter(Qt.Orientation.Vertical)
        grid_box = QWidget()
        grid_layout = QVBoxLayout(grid_box)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.class_filter)
        grid_layout.addWidget(self.thumbs, 1)
        split.addWidget(grid_box)
        box = QWidget()
        box_layout = QVBoxLayout(box)
        box_layout.setContentsMargins(0, 0, 0, 0)
        box_layout.addWidget(self.skipped_label)
        box_layout.addWidget(self.skipped)
        split.addWidget(box)
        split.setSizes([480, 90])
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(split, 1)

    def set_scanning(self, root: Path) -> None:
        self.header.setText(f"Scanning {root} …")
        self.class_filter.clear()
        self.thumbs.thumbnails.set_images(root, [])
        self.skipped.clear()

    def set_summary(self, summary: FolderSummary) -> None:
        self.summary = summary
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.skipped.clear()
        if summary.problem and not summary.classes:
            self.header.setText(f"<b>{summary.root}</b><br><span style='color:#b00020'>"
                                f"{summary.problem}</span>")
            self.thumbs.thumbnails.set_images(summary.root, [])
            self.class_filter.blockSignals(False)
            return
        text = (f"<b>{summary.root}</b><br>{len(summary.classes)} classes · "
                f"{summary.total} images · {len(summary.skipped)} skipped")
        if summary.problem:
            text += f"<br><span style='color:#b00020'>{summary.problem}</span>"
        self.header.setText(text)
        self.class_filter.addItem(f"All classes ({summary.total})", None)
        for cls in summary.classes:
            self.class_filter.addItem(f"{cls} ({len(summary.images[cls])})", cls)
        self.class_filter.blockSignals(False)
        self.thumbs.thumbnails.set_images(
            summary.root, [(rel, cls) for cls in summary.classes for rel in summary.images[cls]])
        for rel, reason in summary.skipped:
            self.skipped.addItem(f"{rel} — {reason}")
        self.skipped_label.setText(f"Skipped files ({len(summary.skipped)})")

    def _filter_changed(self) -> None:
        self.thumbs.thumbnails.set_class_filter(self.class_filter.currentData())

    def selected_images(self) -> list[str]:
        return self.thumbs.selected_images()
