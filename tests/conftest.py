"""Shared fixtures: tiny real labeled folders (CIFAR-10 images shipped in assets/) and tiny
engine settings, so end-to-end tests run the real engine in seconds on a CPU."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "assets" / "sample"
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Surrogates trained by tests go to a temporary cache, never the user's."""
    os.environ["DUNE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


def make_labeled_folder(dest: Path, classes: int = 3, per_class: int = 6) -> Path:
    names = sorted(p.name for p in SAMPLE.iterdir() if p.is_dir())[:classes]
    for name in names:
        (dest / name).mkdir(parents=True)
        for src in sorted((SAMPLE / name).glob("*.jpg"))[:per_class]:
            shutil.copy2(src, dest / name / src.name)
    return dest


@pytest.fixture
def labeled_folder(tmp_path: Path) -> Path:
    return make_labeled_folder(tmp_path / "input")


def tiny_settings(**overrides: object) -> dict[str, object]:
    settings: dict[str, object] = dict(
        mode="dune",  # both branches, so every invariant of each is exercised
        # the published spatial objective through the ensemble (the error-minimising noise,
        # which needs none, has its own tests: test_noise.py)
        spatial_objective="targeted",
        label_offset=1, architectures=("fast",), checkpoints=1, epochs=1, steps=3,
        step_size=2 / 255,
        particles=4, iterations=2, colour_sample=4, batch_size=4, train_batch_size=16,
    )
    settings.update(overrides)
    return settings


def new_file_mode() -> int:
    """The permission bits a newly created file gets in this process (0666 less umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
