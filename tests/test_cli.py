from __future__ import annotations

import json
from pathlib import Path

import pytest

from dune_gui.cli import build_parser, main
from dune_gui.engine import VICTIM_LEARNING_RATES
from tests.conftest import make_labeled_folder


def test_help_documents_every_option_with_its_default(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["protect", "--help"])
    text = capsys.readouterr().out
    for option in ("--mode", "--eps", "--step-size", "--steps", "--offset", "--ensemble",
                   "--checkpoints", "--epochs", "--surrogate", "--working-size", "--device",
                   "--seed", "--format", "--quality", "--psnr-min", "--ssim-min",
                   "--delta-e-max", "--colour-preset"):
        assert option in text
    assert "[default 8/255]" in text and "[default 2/255]" in text and "[default 10]" in text


def test_budget_parsing() -> None:
    args = build_parser().parse_args(["protect", "a", "b", "--eps", "8", "--step-size", "1/255"])
    assert args.eps == pytest.approx(8 / 255) and args.step_size == pytest.approx(1 / 255)
    args = build_parser().parse_args(["protect", "a", "b", "--eps", "0.02"])
    assert args.eps == pytest.approx(0.02)


def test_a_level_sets_its_options_and_explicit_options_win(tmp_path: Path) -> None:
    from dune_gui.cli import config_from_args
    from dune_gui.engine import DEFAULTS, PRESETS, preset_of

    def config(*extra: str):
        return config_from_args(build_parser().parse_args(["protect", "a", "b", *extra]))

    assert preset_of(config().to_dict()) == "invisible"
    strong = config("--level", "strong")
    assert preset_of(strong.to_dict()) == "strong"
    assert strong.eps == pytest.approx(PRESETS["strong"].values["eps"]) != DEFAULTS.eps
    assert config("--level", "strong", "--eps", "12").eps == pytest.approx(12 / 255)
    settings = tmp_path / "settings.json"
    config("--steps", "7").save(settings)
    # over a settings file: the level's own options change, the file's others stay
    standard = config("--config", str(settings), "--level", "standard")
    assert standard.steps == PRESETS["standard"].values["steps"]
    assert config("--config", str(settings), "--level", "invisible").steps == \
        PRESETS["invisible"].values["steps"]


def test_protect_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=3)
    out = tmp_path / "out"
    settings = tmp_path / "settings.json"
    code = main(["protect", str(src), str(out), "--ensemble", "fast", "--checkpoints", "1",
                 "--epochs", "1", "--steps", "2", "--iterations", "1", "--particles", "3",
                 "--offset", "1", "--seed", "7", "--no-grey-robust", "--save-config",
                 str(settings), "--quiet"])
    assert code == 0
    captured = capsys.readouterr()
    assert "6 images protected now" in captured.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7
    assert json.loads(settings.read_text())["steps"] == 2
    assert manifest["config"]["method"]["grey_robust"] is False
    # settings file round trip: the same settings continue the same profile
    code = main(["protect", str(src), str(out), "--config", str(settings), "--quiet"])
    assert code == 0
    assert "0 images protected now, 6 already protected" in capsys.readouterr().out


def test_errors_are_one_line_messages(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["protect", str(tmp_path / "missing"), str(tmp_path / "out"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and "Traceback" not in err
    code = main(["protect", str(tmp_path), str(tmp_path / "o"), "--ensemble", "nope"])
    assert code == 2 and "unknown architecture" in capsys.readouterr().err


def test_a_manifest_is_a_settings_file_and_old_manifests_keep_their_method(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=3)
    out = tmp_path / "out"
    args = ["--ensemble", "fast", "--checkpoints", "1", "--epochs", "1", "--steps", "2",
            "--iterations", "1", "--particles", "3", "--offset", "1", "--quiet"]
    assert main(["protect", str(src), str(out), "--no-grey-robust", "--no-pgd-augment",
                 *args]) == 0
    capsys.readouterr()
    manifest_path = out / "manifest.json"
    assert main(["protect", str(src), str(out), "--config", str(manifest_path), "--quiet"]) == 0
    assert "0 images protected now, 6 already protected" in capsys.readouterr().out
    # a folder protected before `grey_robust` and `pgd_augment` existed: its manifest lacks
    # the keys, and its images were computed without them
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"]["method"]["grey_robust"]
    del manifest["config"]["method"]["pgd_augment"]
    manifest_path.write_text(json.dumps(manifest))
    assert main(["protect", str(src), str(out), "--config", str(manifest_path), "--quiet"]) == 0
    assert "0 images protected now, 6 already protected" in capsys.readouterr().out
    assert main(["protect", str(src), str(out), *args]) == 2
    assert "grey_robust" in capsys.readouterr().err


def test_a_three_class_folder_protects_at_defaults_from_the_cli(tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=3, per_class=2)
    out = tmp_path / "out"
    code = main(["protect", str(src), str(out), "--ensemble", "fast", "--checkpoints", "1",
                 "--epochs", "1", "--steps", "2", "--iterations", "1", "--particles", "3",
                 "--quiet"])
    assert code == 0
    assert json.loads((out / "manifest.json").read_text())["label_shift"] == 1


def test_perturbing_and_writing_print_as_one_step() -> None:
    """The engine reports the perturbation and the writing batch by batch; the CLI prints
    them as one "Protecting images" step counted by images written, not two lines taking
    turns."""
    import io

    from dune_gui.cli import ProgressPrinter
    from dune_gui.engine import ProgressEvent

    out = io.StringIO()
    printer = ProgressPrinter(out, quiet=False)
    for done in (64, 128):
        printer.progress(ProgressEvent("spatial", done, 128, ""))
        printer.progress(ProgressEvent("export", done, 128, ""))
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("Protecting images") for line in lines)
    assert "128/128" in lines[-1]


def test_evaluate_takes_the_victims_recipe_from_the_command_line(tmp_path: Path) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=6)
    report = tmp_path / "report"
    code = main(["evaluate", "--clean", str(clean), "--arch", "small", "--epochs", "1",
                 "--learning-rate", "0.01", "--batch-size", "4", "--report", str(report),
                 "--fresh-victims", "--quiet"])
    assert code == 0
    settings = json.loads((report / "report.json").read_text())["settings"]
    assert settings["learning_rate"] == 0.01 and settings["batch_size"] == 4
    assert settings["victim_results_dir"] is None  # --fresh-victims: nothing kept or reused
    # without --learning-rate each kind of victim trains at its own rate
    report_default = tmp_path / "report-default"
    assert main(["evaluate", "--clean", str(clean), "--arch", "small", "--epochs", "1",
                 "--batch-size", "4", "--report", str(report_default), "--fresh-victims",
                 "--quiet"]) == 0
    run = json.loads((report_default / "report.json").read_text())["runs"][0]
    assert run["learning_rate"] == VICTIM_LEARNING_RATES["scratch"]
