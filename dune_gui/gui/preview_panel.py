"""Side-by-side preview: original | spatial (amplified) | colour (amplified) | protected,
with synchronised zoom and pan, a before/after toggle, and the image's numbers."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..engine import DELTA_E_MEANING, PreviewImage


def to_qimage(rgb: np.ndarray) -> QImage:
    """H x W x 3 float in [0, 1] -> QImage (copied, owns its memory)."""
    arr = np.ascontiguousarray(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    h, w, _ = arr.shape
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def amplify_spatial(delta: np.ndarray, eps: float) -> np.ndarray:
    """[-eps, eps] -> [0, 1]: mid-grey is no change, black/white the full budget."""
    return np.clip(0.5 + delta / (2 * eps), 0, 1)


def spatial_from_pane(pane: np.ndarray, eps: float) -> np.ndarray:
    """Inverse of amplify_spatial, so the pane can be checked against the budget."""
    return (pane - 0.5) * 2 * eps


def amplify_colour(field: np.ndarray) -> tuple[np.ndarray, float]:
    """The class's colour offset as the export spreads it over the image (H x W x 3: flat
    for one offset, a blend for a field), scaled so its largest channel reaches the edge."""
    peak = float(np.abs(field).max())
    gain = 0.5 / peak if peak > 0 else 1.0
    return np.clip(0.5 + field * gain, 0, 1).astype(np.float32), gain


def difference_view(original: np.ndarray, protected: np.ndarray) -> tuple[np.ndarray, float]:
    """|protected - original| per pixel (the largest channel), scaled so the largest change
    is white: where the protection changed the picture, and where it left it alone."""
    diff = np.abs(protected - original).max(axis=2)
    peak = float(diff.max())
    gain = 1.0 / peak if peak > 0 else 1.0
    grey = np.clip(diff * gain, 0, 1).astype(np.float32)
    return np.repeat(grey[:, :, None], 3, axis=2), gain


def describe_colour(offset: np.ndarray) -> str:
    if not np.any(offset):
        return "No colour shift: the perturbation alone protects"
    if offset.size == 3:
        return f"Colour offset ({', '.join(f'{v * 255:+.1f}' for v in offset)}) /255"
    grid = round(math.sqrt(offset.size / 3))
    return (f"Colour field, {grid} x {grid} points from {offset.min() * 255:+.1f} to "
            f"{offset.max() * 255:+.1f} /255")


def describe_measures(m: dict[str, float]) -> str:
    """The image's perceptual measures, each with what it means (docs/perceptual.md)."""
    parts = [f"PSNR {m['psnr']:.1f} dB", f"SSIM {m['ssim']:.3f}",
             f"colour difference {m['delta_e']:.2f} on average"]
    if "delta_e_p99" in m:
        parts.append(f"{m['delta_e_p99']:.1f} at the most changed 1% of pixels")
    if "visible_share" in m:
        parts.append(f"{m['visible_share']:.1%} of pixels changed beyond notice")
    return " · ".join(parts) + f". (Colour difference: {DELTA_E_MEANING}.)"


def ensemble_opinion(image: PreviewImage, classes: list[str]) -> str:
    """The surrogate ensemble's top class before and after, as a line (none without an
    ensemble: the error-minimising noise needs none)."""
    if not image.prediction_before:
        return ""
    before = int(np.argmax(image.prediction_before))
    after = int(np.argmax(image.prediction_after))
    return (f"<br>Ensemble prediction before: {classes[before]} "
            f"({image.prediction_before[before]:.0%}); after: {classes[after]} "
            f"({image.prediction_after[after]:.0%}).")


def _toggle(text: str, shortcut: str, tip: str, on_toggled) -> QPushButton:
    button = QPushButton(text)
    button.setCheckable(True)
    button.setShortcut(shortcut)
    button.setToolTip(f"{tip} ({shortcut})")
    button.toggled.connect(on_toggled)
    return button


class SyncedView(QGraphicsView):
    zoomed = Signal(float)

    def __init__(self) -> None:
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setMinimumSize(160, 160)

    def set_image(self, image: QImage) -> None:
        self.item.setPixmap(QPixmap.fromImage(image))
        self.scene().setSceneRect(self.item.boundingRect())

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        self.zoomed.emit(1.25 if event.angleDelta().y() > 0 else 0.8)


class PreviewPanel(QWidget):
    TITLES = ("Original", "Spatial perturbation", "Colour offset", "Protected")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.views = [SyncedView() for _ in self.TITLES]
        self.captions = [QLabel(t) for t in self.TITLES]
        self.pane_arrays: list[np.ndarray] = []
        self.current: PreviewImage | None = None
        self.classes: list[str] = []
        self._syncing = False
        grid = QGridLayout()
        for i, (view, caption) in enumerate(zip(self.views, self.captions, strict=True)):
            caption.setWordWrap(True)
            # two by two: each pane gets half the width, not a quarter (photos are wide)
            grid.addWidget(caption, (i // 2) * 2, i % 2)
            grid.addWidget(view, (i // 2) * 2 + 1, i % 2)
            view.zoomed.connect(self.zoom)
            view.horizontalScrollBar().valueChanged.connect(self._sync_scroll)
            view.verticalScrollBar().valueChanged.connect(self._sync_scroll)
        self.views[1].setToolTip("Mid-grey = unchanged; black/white = the full budget (eps)")
        self.views[2].setToolTip("The class's colour offset, amplified so it is visible")
        controls = QHBoxLayout()
        self.compare = _toggle("Show original", "Space", "Before/after: show the original in "
                               "the protected pane", self._refresh_protected)
        self.flicker = _toggle("Flicker", "F", "Alternate original and protected twice a "
                               "second in the protected pane: the quickest way to see any "
                               "change", self._set_flicker)
        self._flicker_timer = QTimer(self)
        self._flicker_timer.setInterval(500)
        self._flicker_timer.timeout.connect(self.compare.toggle)
        self.difference = _toggle("Difference", "D", "Show where the protected image differs "
                                  "from the original, amplified: black = unchanged",
                                  self._refresh_protected)
        actual = QPushButton("100%")
        actual.setShortcut("Ctrl+1")
        actual.setToolTip("Show the images at their real size, one image pixel per screen "
                          "pixel, as they will be seen (Ctrl+1)")
        actual.clicked.connect(self.actual_size)
        zoom_in = QPushButton("Zoom in")
        zoom_in.setShortcut("Ctrl++")
        zoom_in.clicked.connect(lambda: self.zoom(1.25))
        zoom_out = QPushButton("Zoom out")
        zoom_out.setShortcut("Ctrl+-")
        zoom_out.clicked.connect(lambda: self.zoom(0.8))
        fit = QPushButton("Fit")
        fit.setShortcut("Ctrl+0")
        fit.setToolTip("Fit the image in the panes (Ctrl+0)")
        fit.clicked.connect(self.fit)
        for w in (self.compare, self.flicker, self.difference, actual, fit, zoom_in, zoom_out):
            controls.addWidget(w)
        controls.addStretch(1)
        self.info = QLabel("Select images and press Preview to see the protection.")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addLayout(grid, 1)
        layout.addLayout(controls)
        layout.addWidget(self.info)

    def show_image(self, image: PreviewImage, classes: list[str]) -> None:
        self.current = image
        self.classes = classes
        swatch, gain = amplify_colour(image.colour_field)
        self.pane_arrays = [image.original, amplify_spatial(image.spatial, image.eps), swatch,
                            image.protected]
        for view, arr in zip(self.views[:3], self.pane_arrays[:3], strict=True):
            view.set_image(to_qimage(arr))
        self._refresh_protected()
        eps255 = image.eps * 255
        what = "Spatial perturbation + class pattern" if image.pattern_eps else \
            "Spatial perturbation"
        self.captions[1].setText(f"{what} ×{1 / (2 * image.eps):.0f} "
                                 f"(±{eps255:g}/255 → black/white)")
        colour_caption = describe_colour(image.colour)
        if np.any(image.colour):  # the amplification only means something for a shift
            colour_caption += f", ×{gain:.1f}"
        self.captions[2].setText(colour_caption)
        self.info.setText(
            f"<b>{image.rel}</b> — class <b>{image.cls}</b>"
            + (f", steered toward <b>{image.target}</b>" if image.target else "")
            + f".<br>{describe_measures(image.metrics)}{ensemble_opinion(image, classes)}")
        self.fit()

    def _refresh_protected(self) -> None:
        if self.current is None:
            return
        showing_original = self.compare.isChecked()
        if self.difference.isChecked():
            arr, gain = difference_view(self.current.original, self.current.protected)
            caption = f"Difference ×{gain:.0f} (black = unchanged)"
        else:
            arr = self.current.original if showing_original else self.current.protected
            caption = ("Protected — showing ORIGINAL" if showing_original
                       else "Protected (as written)")
        self.views[3].set_image(to_qimage(arr))
        self.captions[3].setText(caption)

    def _set_flicker(self, on: bool) -> None:
        if on:
            self._flicker_timer.start()
        else:
            self._flicker_timer.stop()
            self.compare.setChecked(False)

    def actual_size(self) -> None:
        for view in self.views:
            view.resetTransform()

    def zoom(self, factor: float) -> None:
        for view in self.views:
            view.scale(factor, factor)

    def fit(self) -> None:
        for view in self.views:
            view.fitInView(view.item, Qt.AspectRatioMode.KeepAspectRatio)

    def _sync_scroll(self) -> None:
        if self._syncing:
            return
        source = self.sender()
        self._syncing = True
        try:
            for view in self.views:
                for bar in (view.horizontalScrollBar(), view.verticalScrollBar()):
                    if bar is source:
                        orientation = bar.orientation()
                        for other in self.views:
                            target = (other.horizontalScrollBar()
                                      if orientation == Qt.Orientation.Horizontal
                                      else other.verticalScrollBar())
                            if target is not bar:
                                target.setValue(bar.value())
        finally:
            self._syncing = False
