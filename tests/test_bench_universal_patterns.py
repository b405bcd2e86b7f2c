"""The universal-pattern screen (dune_gui/bench/universal_patterns.py): one pattern per
class, never beyond its bound, written under the same names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dune_gui.bench import universal_patterns


@pytest.mark.parametrize("control", [[], ["--random"]], ids=["aimed", "random"])
def test_each_class_gets_one_pattern_within_its_bound(labeled_folder: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      control: list[str]) -> None:
    out, report = tmp_path / "out", tmp_path / "r.json"
    monkeypatch.setattr(sys, "argv", [
        "universal_patterns", "--clean", str(labeled_folder), "--out", str(out),
        "--size", "32", "--victim-size", "32", "--eps", "8", "--steps", "2", "--batch", "6",
        "--offset", "1", "--surrogates", "lite0", "--judges", "lite0",
        "--report", str(report), *control])
    universal_patterns.main()
    sources = sorted(labeled_folder.glob("*/*.jpg"))
    for cls in {p.parent.name for p in sources}:
        cleans, deltas = [], []
        for src in (p for p in sources if p.parent.name == cls):
            clean = np.asarray(Image.open(src).convert("RGB"), dtype=int)
            written = np.asarray(Image.open(out / cls / f"{src.stem}.png"), dtype=int)
            assert np.abs(written - clean).max() <= 8 + 1  # the bound, plus rounding
            cleans.append(clean)
            deltas.append(written - clean)
        # one pattern per class: where no photo clipped, all got the same change (to
        # within rounding)
        unclipped = np.all([(c > 10) & (c < 245) for c in cleans], axis=0)
        spread = np.max(deltas, axis=0) - np.min(deltas, axis=0)
        assert spread[unclipped].max() <= 1
    result = json.loads(report.read_text())
    assert result["made_on"]["psnr_db"] > 30
    assert set(result["made_on"]["lite0"]) == {"clean_own", "protected_own", "protected_target"}


def test_photos_of_another_size_are_refused(labeled_folder: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["universal_patterns", "--clean", str(labeled_folder),
                                      "--out", str(tmp_path / "o"), "--size", "64"])
    with pytest.raises(SystemExit, match="not 64 x 64"):
        universal_patterns.main()
