"""Benchmark: is the app's event loop ever blocked? Longest gap between ticks of a 5 ms
timer while (1) a folder of N images is loaded and its thumbnail grid scrolled end to end,
and (2) a protection run is in progress.

    QT_QPA_PLATFORM=offscreen python -m dune_gui.bench.gui_responsiveness --images 20000

The folder is made of hard links to the bundled sample's images (N files, real JPEGs).
Not a test: the numbers depend on the machine; the target is no gap over 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from dune_gui.app import start_warm_up
from dune_gui.gui.main_window import MainWindow
from dune_gui.resources import sample_folder


class GapMeter:
    """Records the longest interval between consecutive ticks of a fast timer."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.longest = 0.0
        self.ticks = 0
        self.when = 0.0

    def start(self) -> None:
        self.longest, self.ticks = 0.0, 0
        self.clock.start()
        self.timer.start()

    def _tick(self) -> None:
        elapsed = self.clock.restart()
        self.ticks += 1
        if self.ticks > 1 and elapsed > self.longest:
            self.longest = float(elapsed)
            self.when = time.monotonic()

    def stop(self) -> float:
        self.timer.stop()
        return self.longest


def make_folder(root: Path, count: int) -> Path:
    sources = sorted(sample_folder().rglob("*.jpg"))
    classes = sorted({p.parent.name for p in sources})
    for i in range(count):
        src = sources[i % len(sources)]
        dest = root / classes[i % len(classes)] / f"photo_{i:06d}_{src.stem}.jpg"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dest)
    return root


def spin(app: QApplication, until, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    start_warm_up()  # as the app does at start-up
    work = Path(tempfile.mkdtemp(prefix="dune-gui-bench-"))
    os.environ.setdefault("DUNE_CACHE_DIR", str(work / "cache"))
    folder = make_folder(work / "in", args.images)
    window = MainWindow(QSettings(str(work / "s.ini"), QSettings.Format.IniFormat))
    window.resize(1400, 900)
    window.show()
    meter = GapMeter()
    results: dict[str, float] = {}

    meter.start()
    t0 = time.monotonic()
    window.load_folder(folder)
    spin(app, lambda: window.task is None)
    results["load_s"] = round(time.monotonic() - t0, 2)
    grid = window.folder_panel.thumbs
    spin(app, lambda: False, timeout_s=1.0)  # let the batched layout finish
    results["longest_gap_load_ms"] = meter.stop()
    meter.start()
    bar = grid.verticalScrollBar()
    t0 = time.monotonic()
    steps = 200
    for i in range(steps + 1):  # scroll top to bottom, drawing each screenful
        bar.setValue(bar.maximum() * i // steps)
        spin(app, lambda: False, timeout_s=0.02)
    results["scroll_s"] = round(time.monotonic() - t0, 2)
    results["grid_items"] = grid.count()
    results["longest_gap_scroll_ms"] = meter.stop()

    small = make_folder(work / "run-in", 120)
    window.load_folder(small)
    spin(app, lambda: window.task is None)
    window.settings_panel.set_settings(dict(architectures=("fast",), checkpoints=1, epochs=2,
                                            steps=5, particles=4, iterations=3))
    window.output_edit.setText(str(work / "out"))
    meter.start()
    t0 = time.monotonic()
    stages: list[tuple[float, str]] = []
    window.start_protect()
    if window.task is not None:
        window.task.progress.connect(lambda stage, *rest: stages.append((time.monotonic(),
                                                                        stage)))
    spin(app, lambda: window.task is None)
    results["run_s"] = round(time.monotonic() - t0, 2)
    results["longest_gap_during_run_ms"] = meter.stop()
    results["stage_at_longest_gap"] = next(
        (stage for t, stage in reversed(stages) if t <= meter.when), "start")
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    window.close()


if __name__ == "__main__":
    main()
