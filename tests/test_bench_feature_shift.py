"""The feature-shift screen (dune_gui/bench/feature_shift.py): an unprotected copy moves
nothing, so it must score exactly like the clean folder."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from dune_gui.bench import feature_shift


def test_an_unchanged_copy_stays_in_its_own_class(labeled_folder: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(labeled_folder, copy)
    report = tmp_path / "shift.json"
    monkeypatch.setattr(sys, "argv", [
        "feature_shift", "--clean", str(labeled_folder), "--protected", str(copy),
        "--judges", "lite0", "--size", "64", "--offset", "1", "--out", str(report)])
    feature_shift.main()
    row = json.loads(report.read_text())["judges"]["lite0"]
    moved = row[str(copy)]
    assert moved["still_own_class"] == row["clean_accuracy"]
    assert moved["mean_cosine_gain_toward_target"] == pytest.approx(0.0, abs=1e-5)
