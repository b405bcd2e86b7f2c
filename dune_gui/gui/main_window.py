"""The main window: load a folder, tune, preview side by side, export, verify."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .. import APP_NAME, __version__
from ..engine import (
    DEFAULTS,
    INTERLEAVED,
    MANIFEST_NAME,
    PREVIEW_STEP,
    PREVIEW_TITLE,
    PROTECT_STAGES,
    STEP_TITLES,
    EvaluateConfig,
    EvaluationReport,
    PreviewImage,
    ProtectConfig,
    ProtectResult,
    cuda_device_name,
    default_victim_results_dir,
    estimate_evaluate,
    evaluate,
    format_duration,
    preview,
    protect,
)
from ..resources import icon_paths
from .folder_panel import FolderPanel, FolderSummary, summarise_folder
from .preview_panel import PreviewPanel
from .settings_panel import SettingsPanel
from .tasks import EngineTask

MAX_RECENT = 8
# The app remembers only the settings a user changed from the defaults, so that a later
# version's better defaults reach everyone who never changed them.
CHANGED_SETTINGS_KEY = "changed_settings"
# Earlier versions remembered every value: their defaults of the time are not told apart
# from choices, so such a state is not applied (the user is told).
FULL_SETTINGS_KEY = "settings"
STAGE_ORDER = [s.name for s in PROTECT_STAGES if s.name not in INTERLEAVED]


def steps_of(config: ProtectConfig, preview: bool = False) -> list[str]:
    """The steps a person sees for a run with these settings: each model stage only where
    the settings make it (the Invisible level trains no surrogates, searches no colour
    and makes no class pattern, but makes error-minimising noise); a preview's last step
    is PREVIEW_STEP instead of the export."""
    made = {"surrogates": config.uses_ensemble, "colour": config.uses_colour,
            "patterns": config.uses_pattern, "noise": config.uses_noise}
    steps = [s for s in STAGE_ORDER if made.get(s, True)]
    return [*steps[:-1], PREVIEW_STEP] if preview else steps


def eta_text(stage_eta: float, run_eta: float, stage_finished: bool) -> str:
    """The whole run's time left when the engine can estimate it, else this step's."""
    if run_eta == 0 or (run_eta < 0 and stage_finished):
        return "done"
    if run_eta > 0:
        return f"about {format_duration(run_eta)} left"
    return f"this step: {format_duration(stage_eta)}" if stage_eta >= 0 else ""


def app_icon() -> QIcon:
    icon = QIcon()
    for p in icon_paths():
        icon.addFile(str(p))
    return icon


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.qsettings = settings or QSettings()
        self.setWindowTitle(f"{APP_NAME} {__version__}")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1400, 880)
        self.input_dir: Path | None = None
        self.steps: list[str] = STAGE_ORDER  # of the current run (steps_of its settings)
        self.task: EngineTask | None = None
        self.last_result: ProtectResult | None = None
        self.last_error: str | None = None
        self.previews: list[PreviewImage] = []
        self.preview_classes: list[str] = []

        self.folder_panel = FolderPanel()
        self.preview_panel = PreviewPanel()
        self.preview_list = QListWidget()
        self.preview_list.setMaximumHeight(44)
        self.preview_list.setFlow(QListWidget.Flow.LeftToRight)
        self.preview_list.setToolTip("Previewed images: click one to show it")
        self.preview_list.currentRowChanged.connect(self._show_preview)
        preview_tab = QWidget()
        pv = QVBoxLayout(preview_tab)
        pv.addWidget(self.preview_panel, 1)
        pv.addWidget(self.preview_list)
        from .verify_panel import VerifyPanel

        self.verify_panel = VerifyPanel()
        self.verify_panel.run_requested.connect(self.start_verify)
        # the time estimate follows the chosen victims, a moment after the last change
        self.estimate_task: EngineTask | None = None
        self._timing = False  # the estimate in flight times a training step
        self._after_estimate: Any = None  # a run asked for while it did
        self._estimate_again = False
        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(400)
        self._estimate_timer.timeout.connect(self.estimate_verification)
        self.verify_panel.options_changed.connect(self._estimate_timer.start)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.tabs = QTabWidget()
        self.tabs.addTab(preview_tab, "Preview")
        self.tabs.addTab(self.verify_panel, "Verify")
        self.tabs.addTab(self.log, "Log")
        # priced when someone looks at verification, not for every folder opened
        self.tabs.currentChanged.connect(
            lambda _: self.tabs.currentWidget() is self.verify_panel
            and self._estimate_timer.start())

        self.settings_panel = SettingsPanel(cuda_device_name())
        self.settings_panel.advanced_toggle.setChecked(
            self.qsettings.value("advanced_open", False, type=bool))
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.insertWidget(0, self._build_output_box())
        rv.addWidget(self.settings_panel)
        scroll = QScrollArea()
        scroll.setWidget(right)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(380)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.folder_panel)
        split.addWidget(self.tabs)
        split.addWidget(scroll)
        split.setSizes([330, 690, 380])
        central = QWidget()
        cv = QVBoxLayout(central)
        cv.addWidget(split, 1)
        cv.addWidget(self._build_run_box())
        self.setCentralWidget(central)
        self._build_menus()
        self.statusBar().showMessage("Ready")
        self._restore()
        self._update_buttons()

    # ---- construction --------------------------------------------------------------
    def _build_output_box(self) -> QGroupBox:
        box = QGroupBox("Output folder")
        row = QHBoxLayout(box)
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("Choose where the protected copy goes")
        self.output_edit.setToolTip("Where the protected copy is written; never inside the "
                                    "input folder, which is only ever read")
        self.output_edit.setAccessibleName("Output folder")
        self.output_edit.textChanged.connect(self._update_buttons)
        browse = QPushButton("Browse…")
        browse.setToolTip("Choose the output folder")
        browse.clicked.connect(self._choose_output)
        row.addWidget(self.output_edit, 1)
        row.addWidget(browse)
        return box

    def _build_run_box(self) -> QWidget:
        """One story: the current stage, one bar, its ETA; the detail goes to the log."""
        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(4, 0, 4, 0)
        self.stage_label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setValue(0)
        self.eta_label = QLabel("")
        self.eta_label.setMinimumWidth(self.eta_label.fontMetrics().horizontalAdvance(
            "about 10h00m left") + 8)
        grid.addWidget(self.stage_label, 0, 0)
        grid.addWidget(self.bar, 0, 1)
        grid.addWidget(self.eta_label, 0, 2)
        grid.setColumnStretch(1, 1)
        buttons = QHBoxLayout()
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip("Protect the selected images (or a few per class) in "
                                       "memory and show them side by side (Ctrl+P)")
        self.preview_button.clicked.connect(self.start_preview)
        self.protect_button = QPushButton("Protect && export")
        self.protect_button.setToolTip("Write the protected copy of the whole folder (Ctrl+E); "
                                       "running again resumes or adds new images")
        self.protect_button.clicked.connect(self.start_protect)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current batch; finished images are kept "
                                      "(Esc)")
        self.cancel_button.clicked.connect(self.cancel_task)
        self.open_output_button = QPushButton("Open output folder")
        self.open_output_button.setToolTip("Show the protected images in your file manager")
        self.open_output_button.clicked.connect(self.open_output)
        for b in (self.preview_button, self.protect_button, self.cancel_button,
                  self.open_output_button):
            buttons.addWidget(b)
        grid.addLayout(buttons, 1, 0, 1, 3)
        return box

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open folder…", QKeySequence.StandardKey.Open,
                     self.choose_folder)
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        self._action(file_menu, "&Load settings…", "Ctrl+L", self.load_settings_file)
        self._action(file_menu, "&Save settings…", QKeySequence.StandardKey.Save,
                     self.save_settings_file)
        file_menu.addSeparator()
        # Ctrl+Q spelled out: the platform's standard Quit key is empty on some desktops
        self._action(file_menu, "&Quit", "Ctrl+Q", self.close)
        run_menu = self.menuBar().addMenu("&Run")
        self._action(run_menu, "&Preview", "Ctrl+P", self.start_preview)
        self._action(run_menu, "Protect && &export", "Ctrl+E", self.start_protect)
        self._action(run_menu, "&Cancel", "Esc", self.cancel_task)
        self._action(run_menu, "&Verify protection", "Ctrl+Shift+V", self.start_verify)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About", QKeySequence.StandardKey.HelpContents, self.about)
        self._refresh_recent()

    def _action(self, menu: Any, text: str, shortcut: Any, slot: Any) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    # ---- folder loading ------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if self._dropped_folder(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        folder = self._dropped_folder(event)
        if folder is not None:
            event.acceptProposedAction()
            self.load_folder(folder)

    @staticmethod
    def _dropped_folder(event: QDragEnterEvent | QDropEvent) -> Path | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile() and Path(url.toLocalFile()).is_dir():
                return Path(url.toLocalFile())
        return None

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a labeled folder")
        if folder:
            self.load_folder(Path(folder))

    def load_folder(self, folder: Path) -> None:
        if self._busy() or self._after_timing(lambda: self.load_folder(folder)):
            return
        self.input_dir = Path(folder)
        self.folder_panel.set_scanning(self.input_dir)
        self._remember_recent(self.input_dir)
        if not self.output_edit.text():
            self.output_edit.setText(str(self.input_dir.parent /
                                         f"{self.input_dir.name}-protected"))
        self._run("scan", lambda p, log, c: summarise_folder(folder, c), self._scan_done)

    def _scan_done(self, summary: FolderSummary) -> None:
        self.folder_panel.set_summary(summary)
        if self.tabs.currentWidget() is self.verify_panel:
            self._estimate_timer.start()
        self.statusBar().showMessage(
            f"{len(summary.classes)} classes, {summary.total} images, "
            f"{len(summary.skipped)} skipped" if not summary.problem else summary.problem)

    # ---- runs ----------------------------------------------------------------------
    def current_config(self) -> ProtectConfig:
        if self.input_dir is None:
            raise ValueError("open a labeled folder first")
        output = self.output_edit.text().strip()
        return ProtectConfig(input_dir=self.input_dir,
                             output_dir=Path(output) if output else self.input_dir,
                             **self._widget_values())

    def _widget_values(self) -> dict[str, Any]:
        """Every ProtectConfig setting the window shows."""
        return self.settings_panel.settings()

    def start_preview(self) -> None:
        if self._busy() or self._after_timing(self.start_preview):
            return
        try:
            config = self.current_config()
        except ValueError as exc:
            self.show_error(str(exc).capitalize())
            return
        rels = self.folder_panel.selected_images() or None
        self._reset_bars()
        self.steps = steps_of(config, preview=True)
        self._run("preview", lambda p, log, c: preview(config, rels, 4, p, log, c),
                  self._preview_done)

    def _preview_done(self, result: tuple[list[str], list[PreviewImage]]) -> None:
        self.preview_classes, self.previews = result
        self.preview_list.clear()
        for im in self.previews:
            self.preview_list.addItem(QListWidgetItem(im.rel))
        if self.previews:
            self.preview_list.setCurrentRow(0)
        self.tabs.setCurrentIndex(0)

    def _show_preview(self, row: int) -> None:
        if 0 <= row < len(self.previews):
            self.preview_panel.show_image(self.previews[row], self.preview_classes)

    def start_protect(self) -> None:
        if self._busy() or self._after_timing(self.start_protect):
            return
        if not self.output_edit.text().strip():
            self.show_error("Choose an output folder first.")
            return
        try:
            config = self.current_config()
        except ValueError as exc:
            self.show_error(str(exc).capitalize())
            return
        self._reset_bars()
        self.steps = steps_of(config)
        self._run("protect", lambda p, log, c: protect(config, p, log, c), self._protect_done)

    def _protect_done(self, result: ProtectResult) -> None:
        self.last_result = result
        verb = "Cancelled" if result.status == "cancelled" else "Finished"
        text = (f"{verb}: {result.protected} images protected, {result.reused} already "
                f"protected, {len(result.skipped)} skipped. Output: {result.output_dir}")
        self._append_log("info", text)
        self.statusBar().showMessage(text)
        self._update_buttons()
        self.notify_finished()

    def start_verify(self) -> None:
        if self._busy() or self._after_timing(self.start_verify):
            return
        output = Path(self.output_edit.text().strip() or ".")
        if self.input_dir is None or not (output / MANIFEST_NAME).exists():
            self.show_error("Protect the folder first: verification trains on the protected "
                            "copy in the output folder.")
            return
        report_dir = output.parent / f"{output.name}-verification"
        try:
            config = self._verify_config(output, report_dir)
        except ValueError as exc:
            self.show_error(str(exc).capitalize())
            return
        self._reset_bars()
        self.tabs.setCurrentWidget(self.verify_panel)
        self._run("verify", lambda p, log, c: evaluate(config, p, log, c),
                  lambda report: self._verify_done(report, report_dir))

    def _verify_config(self, output: Path, report_dir: Path | None) -> EvaluateConfig:
        defences, peers, arch, epochs = self.verify_panel.chosen()
        protect_config = self.current_config()
        assert self.input_dir is not None  # current_config refuses otherwise
        return EvaluateConfig(clean_dir=self.input_dir, protected=(("dune", output),),
                              peers=peers, defences=defences, archs=(arch,), epochs=epochs,
                              report_dir=report_dir,
                              protect_settings=protect_config.ablation_settings(),
                              device=protect_config.device,
                              victim_results_dir=default_victim_results_dir())

    def estimate_verification(self) -> None:
        """Price the chosen verification off the GUI thread; while a run is going, only from
        rates kept by earlier verifications (timing a step now would slow the run and be
        slowed by it)."""
        if self.input_dir is None:
            self.verify_panel.show_estimate(None, "")
            return
        if self.estimate_task is not None:
            self._estimate_again = True  # the newest choice is priced when this one ends
            return
        try:
            config = self._verify_config(Path(self.output_edit.text().strip() or "."), None)
        except ValueError as exc:
            self.verify_panel.show_estimate(None, str(exc).capitalize())
            return
        # while a run is going, only from kept rates: no timing beside it
        measure = not self._busy()
        task = EngineTask(lambda p, log, c: estimate_evaluate(config, measure), self)
        task.succeeded.connect(self.verify_panel.show_estimate)
        task.failed.connect(lambda message, _details: self.verify_panel.show_estimate(
            None, f"No time estimate: {message}"))
        task.finished.connect(self._estimate_finished)
        self.estimate_task = task
        self._timing = measure
        if measure:
            self.verify_panel.show_estimate(None, "timing a training step…")
        task.start()

    def _estimate_finished(self) -> None:
        if self.estimate_task is not None:
            self.estimate_task.deleteLater()
        self.estimate_task = None
        self._timing = False
        action, self._after_estimate = self._after_estimate, None
        if action is not None:
            action()
        if self._estimate_again:
            self._estimate_again = False
            self.estimate_verification()

    def _verify_done(self, report: EvaluationReport, report_dir: Path) -> None:
        self.verify_panel.show_report(report, report_dir)
        verb = "cancelled" if report.status == "cancelled" else "finished"
        self.statusBar().showMessage(f"Verification {verb}. Report: {report_dir}")
        self._estimate_timer.start()  # priced now by this run's rates
        self.notify_finished()

    def notify_finished(self) -> None:
        """A long run ends while the user is elsewhere: flash the window in the taskbar
        (the desktop's own attention signal; nothing if the window is in front)."""
        QApplication.alert(self)

    def _run(self, kind: str, fn: Any, on_success: Any) -> None:
        self.task = EngineTask(fn, self)
        self.task.progress.connect(self._on_progress)
        self.task.log.connect(self._append_log)
        self.task.succeeded.connect(on_success)
        self.task.failed.connect(self._on_failed)
        self.task.finished.connect(self._task_finished)
        self.task.start()
        self.statusBar().showMessage(f"{kind.capitalize()} running…")
        self._update_buttons()

    def cancel_task(self) -> None:
        if self.task is not None and self.task.is_running():
            self.task.cancel()
            self.statusBar().showMessage("Cancelling after the current batch…")

    def _task_finished(self) -> None:
        if self.task is not None:
            self.task.deleteLater()  # a window runs many tasks; none may outlive its run
        self.task = None
        self._update_buttons()

    def _busy(self) -> bool:
        return self.task is not None and self.task.is_running()

    def _after_timing(self, action: Any) -> bool:
        """While the estimate times a training step (a few seconds), a run asked for starts
        when it ends instead of beside it: both would draw from the global random stream
        (a model's initial weights), and the run's bytes must not depend on the timing.
        True when `action` was put off."""
        if self.estimate_task is None or not self._timing:
            return False
        self._after_estimate = action
        self.statusBar().showMessage("Starting once the time estimate is done…")
        return True

    def _on_progress(self, stage: str, done: int, total: int, message: str, eta: float,
                     run_eta: float) -> None:
        if stage in INTERLEAVED and stage not in self.steps:
            if run_eta >= 0:
                self.eta_label.setText(eta_text(eta, run_eta, False))
            return
        # (PREVIEW_STEP is among a run's steps in a preview only)
        title = PREVIEW_TITLE if stage == PREVIEW_STEP else STEP_TITLES.get(stage, stage)
        if stage in self.steps:
            title = f"Step {self.steps.index(stage) + 1} of {len(self.steps)}: {title}"
        self.stage_label.setText(title)
        self.bar.setMaximum(max(total, 1))
        self.bar.setValue(min(done, max(total, 1)))
        self.bar.setFormat(f"{done:,} / {total:,}" if total > 1 else "%p%")
        self.eta_label.setText(eta_text(eta, run_eta, done >= total))
        if message:
            self.statusBar().showMessage(message)

    def _reset_bars(self) -> None:
        self.stage_label.setText("")
        self.bar.setMaximum(1)
        self.bar.setValue(0)
        self.eta_label.setText("")

    def _append_log(self, level: str, message: str) -> None:
        prefix = {"warning": "⚠ ", "error": "✖ "}.get(level, "")
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {prefix}{message}")

    def _on_failed(self, message: str, details: str) -> None:
        self._append_log("error", message)
        self.statusBar().showMessage(f"Stopped: {message}")
        self.log.appendPlainText(details)
        self.show_error(message)

    def show_error(self, message: str) -> None:
        self.last_error = message
        QMessageBox.critical(self, APP_NAME, message)

    def _update_buttons(self) -> None:
        busy = self._busy()
        out_text = self.output_edit.text().strip()
        resumable = bool(out_text) and (Path(out_text) / MANIFEST_NAME).exists()
        self.protect_button.setText("Resume / update && export" if resumable
                                    else "Protect && export")
        have_folder = self.input_dir is not None
        self.preview_button.setEnabled(have_folder and not busy)
        self.protect_button.setEnabled(have_folder and not busy
                                       and bool(self.output_edit.text().strip()))
        self.cancel_button.setEnabled(busy)
        self.verify_panel.run.setEnabled(have_folder and not busy)
        output = Path(self.output_edit.text().strip()) if self.output_edit.text().strip() \
            else None
        self.open_output_button.setEnabled(output is not None and output.is_dir())

    def open_output(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.output_edit.text().strip()))

    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the output folder")
        if folder:
            self.output_edit.setText(folder)

    # ---- settings ------------------------------------------------------------------
    def save_settings_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save settings", "dune-settings.json",
                                              "Settings (*.json)")
        if path:
            self.write_settings_file(Path(path))

    def write_settings_file(self, path: Path) -> None:
        """The same JSON `dune-cli protect --config FILE` reads."""
        try:
            self._config().save(path, portable=True)
        except OSError as exc:
            self.show_error(f"Cannot save settings to {path}: {exc.strerror or exc}")

    def load_settings_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load settings", "",
                                              "Settings (*.json);;All files (*)")
        if path:
            self.read_settings_file(Path(path))

    def read_settings_file(self, path: Path) -> None:
        try:
            config = ProtectConfig.load(path)
        except (OSError, ValueError, TypeError) as exc:
            self.show_error(f"Cannot read settings from {path}: {exc}")
            return
        self._apply_values(config.to_dict())

    def _config(self) -> ProtectConfig:
        return ProtectConfig(input_dir=self.input_dir or Path("."),
                             output_dir=Path(self.output_edit.text().strip() or "."),
                             **self._widget_values())

    def _config_values(self) -> dict[str, Any]:
        return self._config().portable_dict()

    def _apply_values(self, values: dict[str, Any]) -> None:
        self.settings_panel.set_settings(ProtectConfig.from_dict(values).to_dict())

    def _changed_values(self) -> dict[str, Any]:
        defaults = DEFAULTS.to_dict()
        return {name: value for name, value in self._config_values().items()
                if name not in ("input_dir", "output_dir") and value != defaults.get(name)}

    def _restore(self) -> None:
        raw = self.qsettings.value(CHANGED_SETTINGS_KEY)
        if raw:
            try:
                changed = json.loads(str(raw))
                ProtectConfig.from_dict(changed)  # validate before applying
                self._apply_values(changed)
            except (ValueError, TypeError):
                pass  # settings from an incompatible version: keep the defaults
        elif self.qsettings.value(FULL_SETTINGS_KEY):
            message = ("Settings remembered by an earlier version were not restored (its "
                       "defaults have changed since): the current defaults are shown.")
            self.statusBar().showMessage(message)  # replaced once a folder loads
            self._append_log("warning", message)  # so it stays in the Log tab
        geometry = self.qsettings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    def save_state(self) -> None:
        # an invalid combination in the widgets is simply not persisted
        with contextlib.suppress(ValueError):
            self.qsettings.setValue(CHANGED_SETTINGS_KEY, json.dumps(self._changed_values()))
        self.qsettings.remove(FULL_SETTINGS_KEY)
        self.qsettings.setValue("geometry", self.saveGeometry())
        self.qsettings.setValue("advanced_open", self.settings_panel.advanced_toggle.isChecked())
        self.qsettings.sync()

    def _remember_recent(self, folder: Path) -> None:
        recent = [str(folder)] + [r for r in self._recent() if r != str(folder)]
        self.qsettings.setValue("recent", json.dumps(recent[:MAX_RECENT]))
        self._refresh_recent()

    def _recent(self) -> list[str]:
        try:
            return list(json.loads(str(self.qsettings.value("recent") or "[]")))
        except ValueError:
            return []

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self._recent():
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.load_folder(Path(f)))
        self.recent_menu.setEnabled(bool(self._recent()))

    def about(self) -> None:
        QMessageBox.about(
            self, f"About {APP_NAME}",
            f"<h3>{APP_NAME} {__version__}</h3><p>Makes a labeled image folder unlearnable "
            "with DUNE (Dual-branch UNlearnable Ensemble, ICML 2026): a per-image spatial "
            "perturbation from ensemble-targeted PGD plus a per-class colour offset from a "
            "particle swarm search. Surrogates are trained on your own folder; nothing is "
            "uploaded or downloaded.</p>")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self._busy() and self.task is not None:
            self.task.cancel()
            self.statusBar().showMessage("Finishing the current batch before closing…")
            self.task.wait(120_000)
        self._estimate_timer.stop()
        if self.estimate_task is not None:  # a few seconds at most: one timed step
            self.estimate_task.wait(60_000)
        self.save_state()
        event.accept()
