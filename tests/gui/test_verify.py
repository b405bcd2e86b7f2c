"""Verify from the app: victims on the protected copy and on the clean folder."""

from __future__ import annotations

from pathlib import Path

from dune_gui.gui.main_window import MainWindow
from dune_gui.gui.verify_panel import rough_duration
from tests.gui.conftest import start_protect, wait_idle


def _protected(qtbot, window: MainWindow, tmp_path: Path) -> Path:
    out = start_protect(qtbot, window, tmp_path)
    wait_idle(qtbot, window)
    panel = window.verify_panel
    for name, box in panel.defence_boxes.items():
        box.setChecked(name == "none")
    for box in panel.peer_boxes.values():
        box.setChecked(False)
    panel.epochs.setValue(1)
    return out


def test_verify_trains_victims_and_shows_one_progress_count(qtbot, window: MainWindow,
                                                            tmp_path: Path) -> None:
    _protected(qtbot, window, tmp_path)
    window.start_verify()
    assert window.task is not None
    seen: list[tuple[str, int, int]] = []
    window.task.progress.connect(lambda stage, done, total, *rest:
                                 seen.append((stage, done, total)))
    wait_idle(qtbot, window)
    panel = window.verify_panel
    assert panel.table.rowCount() == 2 and panel.table.columnCount() == 1
    assert panel.table.verticalHeaderItem(1).text() == "dune"
    assert panel.table.item(0, 0).text().endswith("%")
    assert not panel.plot.pixmap().isNull()
    assert not panel.tradeoff.pixmap().isNull()  # accuracy against distortion
    assert window.statusBar().currentMessage().startswith("Verification finished.")
    # the engine's notes read as sentences: "... set. No test folder: ..."
    assert "No test folder: " in panel.summary.text()
    sentence = panel.result.text()  # the result in words, before the table
    assert "trained on your protected images recognised" in sentence
    assert "when trained on the originals; chance is 33%" in sentence
    # one stage, one total, a count that only rises: the bar's maximum never jumps
    assert {stage for stage, *_ in seen} == {"verify"}
    assert len({total for *_, total in seen}) == 1
    dones = [done for _, done, _ in seen]
    assert dones == sorted(dones) and dones[-1] == seen[-1][2]
    # both victims are kept now: the re-check's price says so (needs the Verify tab shown)
    window.tabs.setCurrentWidget(panel)
    window.estimate_verification()
    qtbot.waitUntil(lambda: panel.estimate.text() == "Nothing to train: 2 results from "
                    "earlier checks reused", timeout=30_000)


def test_verify_with_an_invalid_setting_says_why(qtbot, window: MainWindow, errors: list[str],
                                                 tmp_path: Path) -> None:
    _protected(qtbot, window, tmp_path)
    window.settings_panel.set_settings({"architectures": (), "surrogate_files": ()})
    window.start_verify()  # used to raise inside the Qt slot, unseen
    assert window.task is None
    assert errors and "ensemble is empty" in errors[-1]


def test_the_chosen_verification_is_priced_before_it_runs(qtbot, window: MainWindow,
                                                         tmp_path: Path, monkeypatch) -> None:
    _protected(qtbot, window, tmp_path)
    # no victim kept by an earlier test (the sample's copies look alike to the estimate)
    monkeypatch.setenv("DUNE_CACHE_DIR", str(tmp_path / "no-victims-kept"))
    panel = window.verify_panel
    qtbot.waitUntil(lambda: "for 2 victims" in panel.estimate.text(), timeout=30_000)
    assert panel.estimate.text().startswith("about ")
    panel.peer_boxes["ops"].setChecked(True)  # one more training set: a third victim
    qtbot.waitUntil(lambda: "for 3 victims" in panel.estimate.text(), timeout=30_000)
    panel.peer_boxes["spatial"].setChecked(True)
    qtbot.waitUntil(lambda: "plus generating the ablations" in panel.estimate.text(),
                    timeout=30_000)
    qtbot.waitUntil(lambda: window.estimate_task is None, timeout=30_000)


def test_a_run_asked_for_while_a_step_is_timed_starts_after_it(
        qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:
    import time

    from dune_gui.gui import main_window

    _protected(qtbot, window, tmp_path)
    qtbot.waitUntil(lambda: window.estimate_task is None, timeout=30_000)
    timed = main_window.estimate_evaluate

    def slow(config, measure=True):  # a pretrained victim's timing takes seconds
        time.sleep(0.5)
        return timed(config, measure)

    monkeypatch.setattr(main_window, "estimate_evaluate", slow)
    window.estimate_verification()
    assert window.estimate_task is not None
    window.start_verify()
    assert window.task is None  # not beside the timing
    assert "once the time estimate is done" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.task is not None, timeout=30_000)  # but right after it
    wait_idle(qtbot, window)
    assert window.verify_panel.table.rowCount() == 2


def test_the_estimate_is_no_more_precise_than_it_is() -> None:
    assert [rough_duration(s) for s in (3, 44, 119, 121, 2153, 3599, 3600, 4000, 47_000)] == \
        ["10 s", "40 s", "2 min", "2 min", "36 min", "1 h", "1 h", "1 h 05 min", "13 h 05 min"]
