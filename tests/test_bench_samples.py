"""The benchmarks' photo samples (dune_gui/bench/samples.py): every class represented, copies
at the size asked for, the source folder untouched."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from dune_gui.bench.samples import sample_folder, spread_sample


def test_a_sample_spreads_over_the_classes(labeled_folder: Path) -> None:
    classes, items = spread_sample(labeled_folder, 6)
    assert len(items) == 6
    assert {item.label for item in items} == set(range(len(classes)))


def test_resized_copies_keep_their_class_and_leave_the_source(labeled_folder: Path,
                                                               tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in labeled_folder.rglob("*") if p.is_file()}
    into = sample_folder(labeled_folder, 6, "40x52", tmp_path / "sample")
    copies = sorted(into.rglob("*.jpg"))
    assert len(copies) == 6
    assert {p.parent.name for p in copies} == {p.name for p in labeled_folder.iterdir()}
    for path in copies:
        with Image.open(path) as img:
            assert (img.size, img.mode) == ((40, 52), "RGB")
    assert {p: p.read_bytes() for p in labeled_folder.rglob("*") if p.is_file()} == before
