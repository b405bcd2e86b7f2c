"""Protect from the app: the worker writes the copy, one progress story, cancel and resume,
errors as dialogs, no task left behind."""

from __future__ import annotations

import gc
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

from dune_gui.gui.main_window import MainWindow
from dune_gui.gui.tasks import EngineTask
from tests.conftest import make_labeled_folder
from tests.gui.conftest import drop, load, start_protect, wait_idle


def test_full_run_through_the_worker_writes_the_protected_copy(qtbot, window: MainWindow,
                                                               tmp_path: Path) -> None:
    out = start_protect(qtbot, window, tmp_path)
    stages: list[str] = []
    assert window.task is not None
    window.task.progress.connect(lambda stage, *rest: stages.append(stage))
    assert window.preview_button.isEnabled() is False  # busy
    wait_idle(qtbot, window)
    assert window.last_result is not None and window.last_result.status == "completed"
    assert len(list(out.rglob("*.png"))) == 12
    assert (out / "manifest.json").exists()
    assert window.bar.value() == window.bar.maximum() == 12  # the last stage: export
    assert window.stage_label.text() == "Step 4 of 4: Protecting images"
    assert window.eta_label.text() == "done"
    assert {"surrogates", "colour", "spatial", "export"} <= set(stages)
    assert window.open_output_button.isEnabled()


def test_a_finished_task_is_deleted(qtbot, window: MainWindow, tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=2)
    for _ in range(3):
        load(qtbot, window, src)
    qtbot.wait(50)  # let deleteLater run
    gc.collect()
    assert window.findChildren(EngineTask) == []


def test_three_classes_protect_at_the_default_label_shift(qtbot, window: MainWindow,
                                                          tmp_path: Path) -> None:
    window.settings_panel.set_settings({"label_offset": 0})  # auto, the default
    start_protect(qtbot, window, tmp_path, per_class=2)
    wait_idle(qtbot, window)
    assert window.last_error is None
    assert window.last_result is not None and window.last_result.label_shift == 1


def test_cancel_stops_within_a_batch_and_keeps_finished_images(qtbot, window: MainWindow,
                                                                tmp_path: Path) -> None:
    out = start_protect(qtbot, window, tmp_path)
    assert window.task is not None

    # cancelled once a batch is written: a cancel that lands while the PGD of the first
    # batch is still being reported writes nothing, by design, and on a loaded machine the
    # GUI thread can get there first
    def on_progress(stage: str, done: int, total: int, *rest: object) -> None:
        if stage == "export" and done > 0:
            window.cancel_task()

    window.task.progress.connect(on_progress)
    wait_idle(qtbot, window)
    assert window.last_result is not None and window.last_result.status == "cancelled"
    written = len(list(out.rglob("*.png")))
    assert 1 <= written <= 8  # the batch in flight (4) and at most one more
    assert "Cancelled" in window.statusBar().currentMessage()
    assert "Resume" in window.protect_button.text()
    window.start_protect()  # the Resume button finishes the rest
    wait_idle(qtbot, window)
    assert window.last_result is not None and window.last_result.status == "completed"
    assert window.last_result.reused == written
    assert len(list(out.rglob("*.png"))) == 12


def test_errors_are_dialogs_not_tracebacks(qtbot, window: MainWindow, errors: list[str],
                                           tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=2)
    load(qtbot, window, src)
    window.output_edit.setText(str(src / "inside"))
    window.start_protect()
    wait_idle(qtbot, window)
    assert errors and "inside" in errors[-1] and "Traceback" not in errors[-1]
    assert not (src / "inside").exists()
    # the status bar no longer says the run is going
    assert window.statusBar().currentMessage().startswith("Stopped: ")


def test_user_errors_are_one_line_and_other_errors_say_they_are_unexpected() -> None:
    from dune_gui.engine import FolderError, ProfileMismatch, SurrogateError
    from dune_gui.gui.tasks import friendly_message

    for exc in (FolderError("the folder x does not exist"), ProfileMismatch("other classes"),
                SurrogateError("bad.onnx: not a valid ONNX model"), PermissionError("denied")):
        text = friendly_message(exc)
        assert text[0].isupper() and "\n" not in text and "Unexpected" not in text
    assert friendly_message(KeyError("x")).startswith("Unexpected problem (KeyError)")


def test_plain_path_drop_choose_protect_open(qtbot, window: MainWindow, tmp_path: Path,
                                             monkeypatch) -> None:
    """What a new user does: drop a folder, pick a level, Protect, open the result; the
    Advanced section stays closed and the bar tells the whole run's time left."""
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    src = make_labeled_folder(tmp_path / "photos", classes=2, per_class=3)
    drop(window, src)
    wait_idle(qtbot, window)
    panel = window.settings_panel
    panel.preset.setCurrentIndex(panel.preset.findData("strong"))
    assert not panel.advanced_toggle.isChecked()
    # the fixture trains one epoch, which holds one checkpoint, not the level's three
    panel.form.set_values({"checkpoints": 1})
    out = Path(window.output_edit.text())  # the default: beside the input, never inside
    assert out.parent == src.parent and out != src
    seen: list[str] = []
    window.protect_button.click()
    assert window.task is not None
    window.task.progress.connect(lambda *event: seen.append(window.eta_label.text()))
    wait_idle(qtbot, window)
    assert window.last_result is not None and window.last_result.status == "completed"
    assert len(list(out.rglob("*.png"))) == 6
    assert any(text.startswith("about ") and text.endswith(" left") for text in seen)
    assert window.eta_label.text() == "done"
    window.open_output_button.click()
    assert opened == [QUrl.fromLocalFile(str(out))]


def test_a_run_counts_only_the_steps_its_settings_make(tmp_path: Path) -> None:
    from dune_gui.engine import ProtectConfig
    from dune_gui.gui.main_window import steps_of

    def steps(**settings: object) -> list[str]:
        return steps_of(ProtectConfig(input_dir=tmp_path, output_dir=tmp_path / "o",
                                      **settings))  # type: ignore[arg-type]

    assert steps() == ["scan", "noise", "export"]  # the Invisible level: no surrogates
    assert steps(spatial_objective="targeted") == ["scan", "surrogates", "export"]
    assert steps(mode="dune", spatial_objective="targeted") == [
        "scan", "surrogates", "colour", "export"]
    assert steps(mode="colour") == ["scan", "surrogates", "colour", "export"]
    # a preview writes nothing: its last step perturbs the chosen images
    assert steps_of(ProtectConfig(input_dir=tmp_path, output_dir=tmp_path / "o"),
                    preview=True) == ["scan", "noise", "spatial"]
