"""A wrapping thumbnail grid that stays fast on tens of thousands of images: a list model
that knows only names until a thumbnail is on screen, then decodes it on a worker thread
(the engine's `load_thumbnail`) and keeps a bounded cache. Names are elided in the middle,
so `IMG_2024_0001.jpg` and `IMG_2024_0999.jpg` stay distinguishable."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView

from ..engine import ImageError, load_thumbnail

THUMB_SIZE = 96
CACHE_LIMIT = 3000  # thumbnails kept (~100 MB at most); older ones are decoded again


class _Delivery(QObject):
    ready = Signal(str, QImage)


class _LoadThumbnail(QRunnable):
    def __init__(self, rel: str, path: Path, delivery: _Delivery) -> None:
        super().__init__()
        self.rel, self.path, self.delivery = rel, path, delivery

    def run(self) -> None:
        try:
            arr = np.ascontiguousarray(load_thumbnail(self.path, THUMB_SIZE))
            h, w, _ = arr.shape
            image = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        except ImageError:
            image = QImage()
        self.delivery.ready.emit(self.rel, image)


class ThumbnailModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.root = Path(".")
        self.items: list[tuple[str, str]] = []  # (relative path, class) of the whole folder
        self.shown: list[str] = []  # relative paths passing the class filter
        self.cache: OrderedDict[str, QPixmap] = OrderedDict()
        self.pending: set[str] = set()
        self.rows: dict[str, int] = {}
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.delivery = _Delivery()
        self.delivery.ready.connect(self._delivered)
        placeholder = QPixmap(THUMB_SIZE, THUMB_SIZE)
        placeholder.fill(QColor("#e0e0e0"))
        self.placeholder = placeholder

    def set_images(self, root: Path, items: list[tuple[str, str]]) -> None:
        self.beginResetModel()
        self.root, self.items = Path(root), items
        self.cache.clear()
        self.pending.clear()
        self._apply_filter(None)
        self.endResetModel()

    def set_class_filter(self, cls: str | None) -> None:
        self.beginResetModel()
        self._apply_filter(cls)
        self.endResetModel()

    def _apply_filter(self, cls: str | None) -> None:
        self.shown = [rel for rel, c in self.items if cls is None or c == cls]
        self.rows = {rel: i for i, rel in enumerate(self.shown)}

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.shown)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> object:
        if not index.isValid():
            return None
        rel = self.shown[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return Path(rel).name
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.UserRole):
            return rel
        if role == Qt.ItemDataRole.DecorationRole:
            pixmap = self.cache.get(rel)
            if pixmap is not None:
                self.cache.move_to_end(rel)
                return pixmap
            if rel not in self.pending:  # asked for because it is about to be drawn
                self.pending.add(rel)
                self.pool.start(_LoadThumbnail(rel, self.root / rel, self.delivery))
            return self.placeholder
        return None

    def _delivered(self, rel: str, image: QImage) -> None:
        self.pending.discard(rel)
        self.cache[rel] = QPixmap.fromImage(image) if not image.isNull() else self.placeholder
        while len(self.cache) > CACHE_LIMIT:
            self.cache.popitem(last=False)
        row = self.rows.get(rel)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class ThumbnailGrid(QListView):
    def __init__(self) -> None:
        super().__init__()
        self.thumbnails = ThumbnailModel(self)
        self.setModel(self.thumbnails)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)  # lays out 20k items in slices
        self.setBatchSize(500)
        self.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.setGridSize(QSize(THUMB_SIZE + 24, THUMB_SIZE + 26))
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setWordWrap(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setToolTip("Select images to preview (Ctrl/Shift-click for several)")
        self.setAccessibleName("Images")

    def count(self) -> int:
        return self.thumbnails.rowCount()

    def selected_images(self) -> list[str]:
        return [i.data(Qt.ItemDataRole.UserRole) for i in self.selectedIndexes()]
