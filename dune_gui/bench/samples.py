"""Samples of a folder for the benchmarks: a few photos spread over the classes, optionally
copied at another size (the sizes users have rather than the dataset's), or the first N
per class (the benchmark subsets)."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from dune_gui.engine.data import ImageItem, scan_folder

DEFAULT_PHOTOS = (Path(__file__).resolve().parents[2].parent / "shared" / "data"
                  / "imagenette" / "train")


def spread_sample(photos: Path, count: int) -> tuple[list[str], list[ImageItem]]:
    """The folder's classes and `count` of its images taken at even steps through the scan
    (so every class is represented)."""
    scan = scan_folder(photos)
    step = max(1, len(scan.items) // count)
    return scan.classes, scan.items[::step][:count]


def parse_size(text: str) -> tuple[int, int]:
    """'400x533' -> (400, 533): width x height."""
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def copy_photo(source: Path, target: Path, resize: str | None) -> Path:
    """`source` as an RGB JPEG (quality 92) at `target`, resized (Lanczos) to `resize`
    ('WxH') when given."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as img:
        img = img.convert("RGB")
        if resize:
            img = img.resize(parse_size(resize), Image.Resampling.LANCZOS)
        img.save(target, quality=92)
    return target


def sample_folder(photos: Path, count: int, resize: str | None, into: Path) -> Path:
    """`count` photos spread over the classes, copied (resized, JPEG 92) into a labeled
    folder `into`."""
    classes, items = spread_sample(photos, count)
    for item in items:
        copy_photo(item.path, into / classes[item.label] / (Path(item.rel).stem + ".jpg"),
                   resize)
    return into


def subset(src: Path, dst: Path, per_class: int, skip: int = 0) -> int:
    """Copy the first `per_class` images of each class (in scan order: sorted by name),
    after the first `skip`, into the labeled folder `dst`; returns how many."""
    scan = scan_folder(src)
    taken = 0
    per: dict[int, int] = {}
    for item in scan.items:
        seen = per.get(item.label, 0)
        per[item.label] = seen + 1
        if not skip <= seen < skip + per_class:
            continue
        target = dst / item.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(item.path, target)
        taken += 1
    return taken
