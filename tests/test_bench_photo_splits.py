"""The photo splits the CPU verification runs use (dune_gui/bench/photo_splits.py): train and
validation disjoint, each class's first photos by name, the source never written."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from dune_gui.bench.photo_splits import make_splits


def dataset(root: Path) -> Path:
    for split, count in (("train", 6), ("test", 3)):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in reversed(range(count)):  # written out of order: the split sorts
                Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(root / split / cls / f"{i}.png")
    return root


def names(folder: Path) -> dict[str, list[str]]:
    return {c.name: sorted(p.name for p in c.iterdir()) for c in sorted(folder.iterdir())}


def test_train_val_test_by_name_and_disjoint(tmp_path: Path) -> None:
    data = dataset(tmp_path / "data")
    before = names(data / "train")
    counts = make_splits(data, tmp_path / "ph", train=3, val=2, test=2)
    assert counts == {"train": 6, "val": 4, "test": 4}
    assert names(tmp_path / "ph" / "train") == {c: ["0.png", "1.png", "2.png"]
                                                for c in ("cat", "dog")}
    assert names(tmp_path / "ph" / "val") == {c: ["3.png", "4.png"] for c in ("cat", "dog")}
    assert names(tmp_path / "ph" / "test") == {c: ["0.png", "1.png"] for c in ("cat", "dog")}
    assert names(data / "train") == before


def test_refuses_to_write_over_a_split(tmp_path: Path) -> None:
    data = dataset(tmp_path / "data")
    (tmp_path / "ph" / "val").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        make_splits(data, tmp_path / "ph", train=3, val=2, test=2)
