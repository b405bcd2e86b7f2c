"""The loaded folder: classes with counts and thumbnails, skipped files, blocking problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..engine import (
    CancelToken,
    FolderError,
    ImageError,
    class_count_problem,
    empty_classes_problem,
    load_thumbnail,
    scan_folder,
)
from .preview_panel import to_qimage

THUMBS_PER_CLASS = 48


@dataclass
class FolderSummary:
    """What the scan task hands to the GUI thread: plain data only."""

    root: Path
    classes: list[str]
    images: dict[str, list[str]]  # class -> relative paths
    skipped: list[tuple[str, str]]
    thumbnails: dict[str, np.ndarray] = field(default_factory=dict)  # rel -> RGB uint8
    problem: str | None = None

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.images.values())


def summarise_folder(root: Path, cancel: CancelToken | None = None,
                     thumbs_per_class: int = THUMBS_PER_CLASS) -> FolderSummary:
    """Runs on a worker thread: scan, then decode a few thumbnails per class."""
    try:
        scan = scan_folder(root)
    except FolderError as exc:
        return FolderSummary(Path(root), [], {}, [], problem=str(exc))
    images: dict[str, list[str]] = {c: [] for c in scan.classes}
    for item in scan.items:
        images[scan.classes[item.label]].append(item.rel)
    summary = FolderSummary(Path(root), scan.classes, images,
                            [(s.rel, s.reason) for s in scan.skipped])
    by_rel = {item.rel: item for item in scan.items}
    for cls in scan.classes:
        for rel in images[cls][:thumbs_per_class]:
            if cancel is not None and cancel.cancelled:
                return summary
            try:
                summary.thumbnails[rel] = load_thumbnail(by_rel[rel].path)
            except ImageError as exc:
                summary.skipped.append((rel, str(exc)))
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
        self.classes = QTreeWidget()
        self.classes.setHeaderLabels(["Class", "Images"])
        self.classes.setIconSize(QSize(32, 32))
        self.classes.setToolTip("Classes found in the folder (sorted by name)")
        self.classes.currentItemChanged.connect(self._show_class)
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setIconSize(QSize(72, 72))
        self.thumbs.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.thumbs.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.thumbs.setToolTip("Select images to preview (Ctrl/Shift-click for several)")
        self.skipped = QListWidget()
        self.skipped.setToolTip("Files that will be skipped, with the reason")
        self.skipped_label = QLabel("Skipped files")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.classes)
        split.addWidget(self.thumbs)
        box = QWidget()
        box_layout = QVBoxLayout(box)
        box_layout.setContentsMargins(0, 0, 0, 0)
        box_layout.addWidget(self.skipped_label)
        box_layout.addWidget(self.skipped)
        split.addWidget(box)
        split.setSizes([160, 260, 90])
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(split, 1)

    def set_scanning(self, root: Path) -> None:
        self.header.setText(f"Scanning {root} …")
        self.classes.clear()
        self.thumbs.clear()
        self.skipped.clear()

    def set_summary(self, summary: FolderSummary) -> None:
        self.summary = summary
        self.classes.clear()
        self.thumbs.clear()
        self.skipped.clear()
        if summary.problem and not summary.classes:
            self.header.setText(f"<b>{summary.root}</b><br><span style='color:#b00020'>"
                                f"{summary.problem}</span>")
            return
        text = (f"<b>{summary.root}</b><br>{len(summary.classes)} classes · "
                f"{summary.total} images · {len(summary.skipped)} skipped")
        if summary.problem:
            text += f"<br><span style='color:#b00020'>{summary.problem}</span>"
        self.header.setText(text)
        for cls in summary.classes:
            item = QTreeWidgetItem([cls, str(len(summary.images[cls]))])
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight)
            first = next((r for r in summary.images[cls] if r in summary.thumbnails), None)
            if first is not None:
                item.setIcon(0, self._icon(first))
            self.classes.addTopLevelItem(item)
        self.classes.resizeColumnToContents(0)
        for rel, reason in summary.skipped:
            self.skipped.addItem(f"{rel} — {reason}")
        self.skipped_label.setText(f"Skipped files ({len(summary.skipped)})")
        if summary.classes:
            self.classes.setCurrentItem(self.classes.topLevelItem(0))

    def _icon(self, rel: str) -> QIcon:
        assert self.summary is not None
        return QIcon(QPixmap.fromImage(to_qimage(self.summary.thumbnails[rel] / 255.0)))

    def _show_class(self, current: QTreeWidgetItem | None, _previous: object = None) -> None:
        self.thumbs.clear()
        if current is None or self.summary is None:
            return
        for rel in self.summary.images.get(current.text(0), []):
            if rel not in self.summary.thumbnails:
                continue
            item = QListWidgetItem(self._icon(rel), Path(rel).name)
            item.setData(Qt.ItemDataRole.UserRole, rel)
            item.setToolTip(rel)
            self.thumbs.addItem(item)

    def selected_images(self) -> list[str]:
        return [i.data(Qt.ItemDataRole.UserRole) for i in self.thumbs.selectedItems()]
