"""Settings in the app: one plain choice, an Advanced form generated from the engine's
table, persistence, and files the CLI reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox

from dune_gui.engine import DEFAULTS, PRESETS, SETTINGS, ProtectConfig
from dune_gui.gui.main_window import CHANGED_SETTINGS_KEY, FULL_SETTINGS_KEY, MainWindow


def test_settings_persist_and_files_are_read_by_the_cli(qtbot, settings_store: QSettings,
                                                        errors: list[str],
                                                        tmp_path: Path) -> None:
    first = MainWindow(settings_store)
    qtbot.addWidget(first)
    first.settings_panel.select_preset("standard")
    form = first.settings_panel.form
    form.widgets["steps"].setValue(12)
    form.widgets["grey_robust"].setChecked(False)
    form.widgets["format"].setCurrentIndex(form.widgets["format"].findData("keep"))
    first.settings_panel.advanced_toggle.setChecked(True)
    first.save_state()
    second = MainWindow(settings_store)
    qtbot.addWidget(second)
    values = second.settings_panel.settings()
    assert values["eps"] == pytest.approx(8 / 255) and values["steps"] == 12
    assert values["format"] == "keep" and not values["grey_robust"]
    assert second.settings_panel.preset.currentData() == "custom"  # 12 steps: no level
    assert second.settings_panel.advanced_toggle.isChecked()  # Advanced remembers its state
    path = tmp_path / "settings.json"
    second.write_settings_file(path)
    config = ProtectConfig.load(path, input_dir=tmp_path, output_dir=tmp_path / "o")
    assert config.steps == 12 and config.format == "keep" and not config.grey_robust
    assert config.psnr_min == pytest.approx(20)


def test_a_settings_file_that_cannot_be_written_is_reported(qtbot, settings_store: QSettings,
                                                            errors: list[str],
                                                            tmp_path: Path) -> None:
    window = MainWindow(settings_store)
    qtbot.addWidget(window)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    window.write_settings_file(blocker / "settings.json")  # no folder can be made there
    assert len(errors) == 1 and errors[0].startswith("Cannot save settings to ")
    good = tmp_path / "settings.json"
    window.write_settings_file(good)
    assert "cache_dir" not in json.loads(good.read_text())  # the machine's, not the settings'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "settings.json"]  # no leftovers


def test_only_changed_settings_are_remembered_so_new_defaults_reach_users(
        qtbot, settings_store: QSettings) -> None:
    first = MainWindow(settings_store)
    qtbot.addWidget(first)
    first.settings_panel.form.widgets["steps"].setValue(12)
    first.save_state()
    remembered = json.loads(str(settings_store.value(CHANGED_SETTINGS_KEY)))
    assert remembered == {"steps": 12}  # a default is not frozen into the user's state
    settings_store.setValue(CHANGED_SETTINGS_KEY, json.dumps({"steps": 12}))
    second = MainWindow(settings_store)
    qtbot.addWidget(second)
    values = second.settings_panel.settings()
    assert values["steps"] == 12
    assert tuple(values["architectures"]) == DEFAULTS.architectures


def test_a_full_state_from_an_earlier_version_is_not_applied(qtbot,
                                                             settings_store: QSettings) -> None:
    """Earlier versions remembered every value, their defaults of the time included: applying
    them would keep that user on the old defaults for good."""
    old = {**ProtectConfig.from_dict({}).to_dict(), "architectures": ["fast", "vgg"],
           "checkpoints": 3, "steps": 30}
    settings_store.setValue(FULL_SETTINGS_KEY, json.dumps(old))
    window = MainWindow(settings_store)
    qtbot.addWidget(window)
    values = window.settings_panel.settings()
    assert tuple(values["architectures"]) == DEFAULTS.architectures
    assert values["steps"] == DEFAULTS.steps
    assert "earlier version" in window.statusBar().currentMessage()
    assert "earlier version" in window.log.toPlainText()
    window.save_state()
    assert settings_store.value(FULL_SETTINGS_KEY) is None


def test_the_advanced_form_has_a_widget_for_every_gui_setting(
        qtbot, window: MainWindow, settings_store: QSettings) -> None:
    shown = {s.name for s in SETTINGS if s.gui}
    assert set(window.settings_panel.form.widgets) == shown
    fresh = MainWindow(settings_store)  # no tiny settings applied: the table's defaults
    qtbot.addWidget(fresh)
    values = fresh.settings_panel.settings()
    for s in SETTINGS:  # the form round-trips every default exactly
        if s.gui and s.kind != "path":
            assert values[s.name] == pytest.approx(s.default), s.name


def test_every_setting_has_a_tooltip_that_says_what_it_does(window: MainWindow) -> None:
    widgets = [w for kind in (QAbstractSpinBox, QComboBox, QCheckBox)
               for w in window.settings_panel.findChildren(kind)]
    missing = [type(w).__name__ for w in widgets if not w.toolTip()]
    assert len(widgets) > 20
    assert not missing


def test_a_preset_sets_its_values_and_is_recognised(qtbot, settings_store: QSettings,
                                                    errors: list[str]) -> None:
    window = MainWindow(settings_store)
    qtbot.addWidget(window)
    panel = window.settings_panel
    assert panel.preset.currentData() == "invisible"  # the default
    for name, preset in PRESETS.items():
        panel.preset.setCurrentIndex(panel.preset.findData(name))
        values = panel.settings()
        for key, value in preset.values.items():
            assert values[key] == pytest.approx(value)
        assert panel.preset_help.text() == preset.summary
    panel.form.widgets["eps"].setValue(6)  # any change away from a preset is Custom
    assert panel.preset.currentData() == "custom"
    # a change of names (the networks the class pattern is aimed through) is seen too
    panel.select_preset("pretrained")
    panel.form.widgets["pattern_networks"].boxes["lite1"].setChecked(False)
    assert panel.preset.currentData() == "custom"
    panel.select_preset("invisible")  # leaving the level leaves its pattern
    assert panel.settings()["pattern_eps"] == 0


def test_a_colour_pattern_outside_the_presets_round_trips(qtbot, settings_store: QSettings,
                                                         tmp_path: Path) -> None:
    window = MainWindow(settings_store)
    qtbot.addWidget(window)
    panel = window.settings_panel
    panel.set_settings({"colour_grid": 5})
    assert panel.settings()["colour_grid"] == 5
    path = tmp_path / "settings.json"
    window.write_settings_file(path)
    assert ProtectConfig.load(path, input_dir=tmp_path, output_dir=tmp_path / "o").colour_grid == 5


def test_the_auto_ensemble_stands_alone_in_the_form(qtbot, settings_store: QSettings,
                                                    errors: list[str]) -> None:
    """Auto is the default; ticking a network clears it, ticking auto clears the networks,
    so the form never holds a combination the engine refuses."""
    window = MainWindow(settings_store)
    qtbot.addWidget(window)
    box = window.settings_panel.form.widgets["architectures"]
    assert box.value() == ("auto",)
    box.boxes["vgg"].setChecked(True)
    box.boxes["lite0"].setChecked(True)
    assert box.value() == ("vgg", "lite0")
    box.boxes["auto"].setChecked(True)
    assert box.value() == ("auto",)
    assert "pretrained" in box.boxes["auto"].toolTip()


def test_settings_the_level_leaves_unused_are_greyed_out_and_say_why(
        qtbot, settings_store: QSettings) -> None:
    window = MainWindow(settings_store)
    qtbot.addWidget(window)
    panel = window.settings_panel
    form = panel.form
    panel.select_preset("invisible")  # error-minimising noise: no surrogates are trained
    ensemble = form.widgets["architectures"]
    assert not ensemble.isEnabled() and not form.labels["architectures"].isEnabled()
    assert "not used now" in ensemble.toolTip()
    assert form.widgets["noise_rounds"].isEnabled()
    assert form.widgets["working_size"].isEnabled()
    panel.select_preset("standard")  # targeted PGD and a colour cast through the ensemble
    assert ensemble.isEnabled() and "not used now" not in ensemble.toolTip()
    assert not form.widgets["noise_rounds"].isEnabled()
    # a change of one setting is followed at once: the spatial objective back to noise
    objective = form.widgets["spatial_objective"]
    objective.setCurrentIndex(objective.findData("error-minimising"))
    assert form.widgets["noise_rounds"].isEnabled()
    assert ensemble.isEnabled()  # the colour branch still trains the ensemble


def test_a_preset_greys_out_once_not_once_per_row(qtbot, settings_store: QSettings,
                                                  monkeypatch) -> None:
    from dune_gui.gui import settings_form

    window = MainWindow(settings_store)
    qtbot.addWidget(window)
    form = window.settings_panel.form
    passes: list[dict] = []
    real = settings_form.unused_settings

    def counted(values: dict) -> dict:
        passes.append(values)
        return real(values)

    monkeypatch.setattr(settings_form, "unused_settings", counted)
    written = {**form.values(), "spatial_objective": "targeted", "mode": "dune",
               "noise_rounds": 7, "steps": 12, "eps": 6 / 255}
    form.set_values(written)
    assert len(passes) == 1  # every row written, then one pass
    assert not form.widgets["noise_rounds"].isEnabled()  # greyed for the values written
    assert form.values()["noise_rounds"] == 7
