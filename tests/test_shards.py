"""Protecting one folder with N processes: a profile-only run, N shards at the same time,
one merging run. Every image and the manifest come out as one uninterrupted run writes
them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dune_gui.engine import FolderError, ProtectConfig, Shard, protect
from dune_gui.engine.shards import shard_journals
from tests.conftest import make_labeled_folder, tiny_settings

ROOT = Path(__file__).resolve().parents[1]


def test_shards_partition_the_folder() -> None:
    for count in (1, 2, 3, 7):
        owners = [[s for s in range(1, count + 1) if Shard(s, count).takes(p)]
                  for p in range(50)]
        assert all(len(o) == 1 for o in owners)


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0"])
def test_a_bad_shard_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        Shard.parse(text)


def test_a_shard_without_a_profile_says_what_to_run_first(tmp_path: Path) -> None:
    config = ProtectConfig(input_dir=make_labeled_folder(tmp_path / "in"),
                           output_dir=tmp_path / "out", **tiny_settings())
    with pytest.raises(FolderError, match="--profile-only"):
        protect(config, shard=Shard(1, 2))


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def _manifest(folder: Path) -> dict:
    data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for moment in ("created", "updated"):  # when it ran, the only thing allowed to differ
        data.pop(moment)
    return data


# the class pattern: made by the profile-only run, read from the shared cache by the shards
PATTERN = {"pattern_eps": 8 / 255, "pattern_steps": 3, "pattern_networks": ("lite0",)}


# the error-minimising noise: made over the whole folder by the profile-only run
NOISE = {"mode": "spatial", "spatial_objective": "error-minimising", "noise_rounds": 2}


@pytest.mark.parametrize(("count", "extra"), [(2, {}), (3, {}), (2, PATTERN), (2, NOISE)])
def test_n_shards_at_once_write_what_one_run_writes(tmp_path: Path, count: int,
                                                    extra: dict) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=3, per_class=5)
    out, cache = tmp_path / "out", tmp_path / "cache"
    config = ProtectConfig(input_dir=src, output_dir=out, cache_dir=cache,
                           **tiny_settings(batch_size=2, **extra))
    protect(config)
    reference = tmp_path / "reference"
    shutil.move(out, reference)

    protect(config, profile_only=True)
    assert not list(out.rglob("*.png"))
    settings = tmp_path / "settings.json"
    config.save(settings)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shards = [subprocess.Popen([sys.executable, "-m", "dune_gui.cli", "protect", str(src),
                                str(out), "--config", str(settings), "--quiet",
                                "--shard", f"{i}/{count}"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
              for i in range(1, count + 1)]
    for process in shards:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
        assert "without --shard" in stdout
    assert len(shard_journals(out)) == count
    assert len(list(out.rglob("*.png"))) == 15  # every image written by some shard
    merged = protect(config)
    assert merged.protected == 0 and merged.reused == 15
    assert shard_journals(out) == []  # folded into the manifest
    assert _files(out) == _files(reference)
    assert _manifest(out) == _manifest(reference)
