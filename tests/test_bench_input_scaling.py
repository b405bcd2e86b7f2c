"""The input-scaling check (dune_gui/bench/input_scaling.py) scores the ImageNet head under
both scalings, on photos of imagenette's classes only."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from dune_gui.bench import input_scaling
from tests.conftest import SAMPLE


def _imagenette_like(dest: Path, names: tuple[str, ...]) -> Path:
    photos = sorted(SAMPLE.glob("*/*.jpg"))
    for i, name in enumerate(names):
        (dest / name).mkdir(parents=True)
        for src in photos[3 * i:3 * i + 3]:
            shutil.copy2(src, dest / name / src.name)
    return dest


def test_both_scalings_are_scored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _imagenette_like(tmp_path / "photos", ("church", "tench"))
    report = tmp_path / "scaling.json"
    monkeypatch.setattr(sys, "argv", ["input_scaling", "--folder", str(folder), "--size", "64",
                                      "--per-class", "2", "--nets", "lite0",
                                      "--out", str(report)])
    input_scaling.main()
    result = json.loads(report.read_text())
    assert result["photos"] == 4
    scores = result["imagenet_top1"]["lite0"]
    assert set(scores) == set(input_scaling.SCALINGS)
    assert all(0.0 <= s <= 1.0 for s in scores.values())


def test_other_classes_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _imagenette_like(tmp_path / "photos", ("church", "dress"))
    monkeypatch.setattr(sys, "argv", ["input_scaling", "--folder", str(folder)])
    with pytest.raises(SystemExit, match="dress"):
        input_scaling.main()
