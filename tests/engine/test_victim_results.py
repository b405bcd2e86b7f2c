"""Kept victim results: a victim asked for again on the same images with the same recipe is
not trained twice and reports what training it gives; any change to its images, recipe or
test set trains it anew; a run without the folder trains every victim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dune_gui.engine import evaluation
from dune_gui.engine.evaluation import EvaluateConfig, evaluate
from tests.conftest import make_labeled_folder


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(architecture, defence) of every victim actually trained."""
    seen: list[tuple[str, str]] = []
    train = evaluation.train_victim

    def spy(arch: str, *args: object, **kwargs: object) -> tuple[float, list[float]]:
        seen.append((arch, args[2].name))  # type: ignore[attr-defined]
        return train(arch, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluation, "train_victim", spy)
    return seen


def test_a_victim_trained_before_is_reused_not_retrained(
        tmp_path: Path, trainings: list[tuple[str, str]]) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=8)
    test = make_labeled_folder(tmp_path / "test", classes=3, per_class=3)
    kept = tmp_path / "victims"
    config = EvaluateConfig(clean_dir=clean, test_dir=test, defences=("none", "grayscale"),
                            archs=("small",), epochs=2, batch_size=8,
                            victim_results_dir=kept, report_dir=tmp_path / "r1")
    first = evaluate(config)
    assert len(trainings) == 2 and len(list(kept.glob("*.json"))) == 2
    assert not any(run["reused"] for run in first.runs) and not first.notes

    again = evaluate(EvaluateConfig(**{**config.__dict__, "report_dir": tmp_path / "r2"}))
    assert len(trainings) == 2  # nothing trained the second time
    assert [r["test_accuracy"] for r in again.runs] == [r["test_accuracy"] for r in first.runs]
    assert [r["curve"] for r in again.runs] == [r["curve"] for r in first.runs]
    assert all(run["reused"] for run in again.runs)
    assert "2 of 2 victims" in again.notes[-1]
    assert json.loads((tmp_path / "r2" / "report.json").read_text())["runs"][0]["reused"]

    # the kept result is the one training gives: a fresh run agrees (deterministic on CPU)
    fresh = evaluate(EvaluateConfig(**{**config.__dict__, "victim_results_dir": None}))
    assert len(trainings) == 4
    assert [r["test_accuracy"] for r in fresh.runs] == [r["test_accuracy"] for r in first.runs]


def test_a_change_to_images_recipe_or_test_set_trains_anew(
        tmp_path: Path, trainings: list[tuple[str, str]]) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=8)
    test = make_labeled_folder(tmp_path / "test", classes=3, per_class=3)
    config = EvaluateConfig(clean_dir=clean, test_dir=test, archs=("small",), epochs=2,
                            batch_size=8, victim_results_dir=tmp_path / "victims")
    evaluate(config)
    assert len(trainings) == 1
    evaluate(EvaluateConfig(**{**config.__dict__, "epochs": 3}))
    evaluate(EvaluateConfig(**{**config.__dict__, "seed": 1}))
    assert len(trainings) == 3
    one = sorted(test.rglob("*.jpg"))[0]
    Image.new("RGB", (40, 40), (1, 2, 3)).save(one)  # one test photo edited
    evaluate(config)
    assert len(trainings) == 4
    one = sorted(clean.rglob("*.jpg"))[0]
    Image.new("RGB", (40, 40), (3, 2, 1)).save(one)  # one training photo edited
    evaluate(config)
    assert len(trainings) == 5
    evaluate(config)
    assert len(trainings) == 5
