"""The engine speed benchmark (dune_gui/bench/engine_speed.py) compares settings within one
run: each variant protects the same subset with its own fresh cache."""

from __future__ import annotations

import json
from pathlib import Path

from dune_gui.bench.engine_speed import main
from tests.conftest import make_labeled_folder


def test_variants_are_timed_on_the_same_subset_in_one_run(tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=3)
    out = tmp_path / "speed.json"
    main(["--data", str(src), "--per-class", "3", "--device", "cpu", "--json", str(out),
          "--variant", '{"steps": 2, "noise_rounds": 2}',
          "--variant", '{"steps": 1, "noise_rounds": 2}'])
    variants = json.loads(out.read_text())["variants"]
    assert [v["variant"] for v in variants] == [{"steps": 2, "noise_rounds": 2},
                                                {"steps": 1, "noise_rounds": 2}]
    assert "T=2" in variants[0]["settings"] and "T=1" in variants[1]["settings"]
    assert all(v["images"] == 6 and v["seconds"]["noise"] > 0 for v in variants)
    assert all(v["rates"]["noise rounds"] == 2 for v in variants)
