"""Finished victims kept by what they were trained on, so a verification that asks for the
same victim again (the clean reference of every re-check, a peer already measured) reuses
its result instead of spending minutes to hours training it a second time.

A victim's result is a pure function of its training images and labels, its test images
and labels, its recipe (architecture, defence, epochs, batch, learning rate, resolution,
seed) and the code and library that train it; on the CPU the training is deterministic,
so the kept result is the one a new training would give. The key hashes all of these: the
images themselves (not their paths, so an edited photo is a new victim), the torch version
and device type, and the source of the code that decides how a victim trains, so a change
to the recipe's code never reuses an old result.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data import FolderScan, scan_folder
from .export import write_json_atomic
from .surrogates import default_cache_dir

RESULTS_FORMAT = 1
# the code that decides a victim's result: whole modules (recipe, networks, defences, image
# decoding) and, from the verification's orchestration, the functions that read the
# folders and train a victim (the rest of evaluation.py changes often and decides nothing
# a kept result depends on; the images themselves are hashed as read)
_RECIPE_MODULES = ("training", "models", "pretrained", "defences", "data")
_RECIPE_FUNCTIONS = ("train_victim", "load_labeled", "stratified_split", "victim_resolution")


def default_victim_results_dir() -> Path:
    """Kept next to the surrogates, in the user's cache (DUNE_CACHE_DIR overrides it)."""
    return default_cache_dir() / "victims"


@functools.cache  # once per process: the code does not change under a running program
def _recipe_source_digest() -> str:
    from . import evaluation  # imports this module: read when a key is made, not before

    digest = hashlib.sha256()
    for name in _RECIPE_MODULES:
        digest.update((Path(__file__).parent / f"{name}.py").read_bytes())
    for function in _RECIPE_FUNCTIONS:
        digest.update(inspect.getsource(getattr(evaluation, function)).encode())
    return digest.hexdigest()


def tensor_digest(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu").contiguous()
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class VictimRecipe:
    """Everything besides the data that a victim's result depends on."""

    arch: str
    defence: str
    epochs: int
    seed: int
    batch_size: int
    learning_rate: float
    size: int
    photo: bool
    device_type: str


def folder_signature(folder: Path, scan: FolderScan | None = None) -> str:
    """A folder's images by name, size and modification time, without decoding any: what
    an estimate can afford to recognise a victim by (evaluate decides by the images).
    `scan`: the folder's, if already listed."""
    digest = hashlib.sha256()
    for item in (scan if scan is not None else scan_folder(folder)).items:
        try:
            stat = item.path.stat()
        except OSError:
            continue  # evaluate will skip it with its reason
        digest.update(f"{item.rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def plan_key(recipe: VictimRecipe, sources: list[str]) -> str:
    """A victim's name before its images are read: its recipe and the signatures (or
    descriptions) of everything its training and test images are made from."""
    text = json.dumps({"format": RESULTS_FORMAT, "recipe": recipe.__dict__,
                       "sources": sources, "torch": torch.__version__,
                       "code": _recipe_source_digest()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def remember_plan(folder: Path, plan: str, key: str) -> None:
    """Note that the victim planned as `plan` is the one kept as `key`, for estimates (a
    cache that cannot be written only costs a later estimate its accuracy)."""
    try:
        (folder / "plans").mkdir(parents=True, exist_ok=True)
        write_json_atomic({"key": key}, folder / "plans" / f"{plan}.json")
    except OSError:
        pass


def planned_result_kept(folder: Path, plan: str) -> bool:
    """Whether the victim planned as `plan` was trained before and its result is kept
    (as far as names, sizes and modification times tell: a folder copied anew looks new
    although its images are the same)."""
    try:
        key = json.loads((folder / "plans" / f"{plan}.json").read_text())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(key, str) and load_result(folder, key) is not None


def victim_key(recipe: VictimRecipe, train_digest: str, test_digest: str) -> str:
    text = json.dumps({"format": RESULTS_FORMAT, "recipe": recipe.__dict__,
                       "train": train_digest, "test": test_digest,
                       "torch": torch.__version__, "code": _recipe_source_digest()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_result(folder: Path, key: str) -> tuple[float, list[float]] | None:
    """The kept (accuracy, curve) for `key`, or None (never kept, or unreadable)."""
    try:
        data: dict[str, Any] = json.loads((folder / f"{key}.json").read_text())
        return float(data["test_accuracy"]), [float(v) for v in data["curve"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_result(folder: Path, key: str, recipe: VictimRecipe, accuracy: float,
                 curve: list[float]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"recipe": recipe.__dict__, "test_accuracy": accuracy, "curve": curve},
                      folder / f"{key}.json")
