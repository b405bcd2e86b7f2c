"""How long a verification will take, before it starts: what the Verify tab shows next to
its button, so a user picks victims and epochs knowing the cost (a fine-tuned pretrained
victim on photos is minutes per victim on a CPU, a small one on 32-px images seconds).

The work is counted in training steps of the victims to train (one whose result is kept
from an earlier run costs nothing: victim_results recognises it by its folders' file
names, sizes and dates, without decoding an image) and priced per architecture,
resolution, batch and device by, in order of preference: the seconds per step the last
verification on this machine measured (test-set scoring included; kept in the cache
folder's rates file, eta.py, beside the protect stages'), or steps timed now on two small
random batches, on a line to the batch, plus the test-set scoring (forward passes, timed
on the same batches). Decoding the folders and generating ablation peers are not counted
(the estimate says so).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import FolderScan, scan_folder
from .defences import DEFENCES
from .eta import read_rates, write_rates
from .models import build_model
from .surrogates import default_cache_dir
from .training import random_crop_flip, random_resized_crop_flip

CALIBRATION_BATCHES = (4, 16)
ADVERSARIAL_STEPS = 7  # defences.adversarial_examples' PGD steps
WARM_UP_STEPS = 2
TIMED_STEPS = 2


@dataclass(frozen=True)
class VerificationEstimate:
    victims: int
    steps: int
    seconds: float | None  # None: no rate known and none measured
    measured_now: bool  # a rate was measured for this estimate (none kept from a run)
    excludes_ablations: bool  # spatial / colour peers are protect runs, not counted
    reused: int = 0  # victims whose results are kept from earlier runs (not in `victims`)


def _rates_entry(arch: str) -> tuple[str]:
    # a victim's rates sit in the cache's rates file (eta.py) beside the protect stages',
    # under their own name so a network used both as surrogate and as victim keeps both
    return (f"victim-{arch}",)


def _step_name(size: int, batch: int) -> str:
    return f"step-{size}px-batch{batch}"


def kept_step_seconds(arch: str, size: int, batch: int, device_type: str,
                      cache_dir: Path | None = None) -> float | None:
    """The seconds per training step (scoring included) the last verification on this
    machine measured for this victim, if any."""
    return read_rates(cache_dir or default_cache_dir(), device_type,
                      _rates_entry(arch)).get(_step_name(size, batch))


def record_step_seconds(arch: str, size: int, batch: int, device_type: str,
                        seconds_per_step: float, cache_dir: Path | None = None) -> None:
    """Keep a victim's measured seconds per training step for the next estimate; a cache
    that cannot be written only costs a later estimate its accuracy."""
    folder = cache_dir or default_cache_dir()
    rates = read_rates(folder, device_type, _rates_entry(arch))
    rates[_step_name(size, batch)] = seconds_per_step
    write_rates(folder, device_type, _rates_entry(arch), rates)


def measure_step_seconds(arch: str, classes: int, size: int, batch: int,
                         device: torch.device, stored_size: int = 0) -> tuple[float, float]:
    """Seconds of one SGD step of `arch` at `batch` and of one scoring forward pass of a
    batch that size (the test set's, after every epoch: for a linear probe, whose backward
    pass stops at its head, nearly a whole step), from steps on two small random
    batches (after warm-up steps, which pay for allocation and kernel choice; the fastest
    of the timed ones, as contention only adds), on a line through the two: a step has a
    fixed part that a proportional scaling from one small batch would multiply. A step is
    timed as the victim takes it: stored 8-bit images to floats and the augmentation
    (with `stored_size`, photos stored that large and cropped to `size`), then forward,
    backward and update. The global random state is left as it was."""
    sizes = sorted({min(batch, b) for b in CALIBRATION_BATCHES})
    with torch.random.fork_rng(devices=[]):
        model = build_model(arch, classes, size).to(device=device,
                                                    memory_format=torch.channels_last)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.SGD(trainable, lr=0.01, momentum=0.9)
        timed = [_fastest_step(model, optimiser, classes, size, stored_size, n, device)
                 for n in sizes]
    step = _on_a_line(sizes, [t for t, _ in timed], batch)
    return step, _on_a_line(sizes, [f for _, f in timed], batch)


def _on_a_line(sizes: list[int], seconds: list[float], batch: int) -> float:
    if len(sizes) == 1:
        return seconds[0] * batch / sizes[0]
    slope = max(0.0, (seconds[1] - seconds[0]) / (sizes[1] - sizes[0]))
    return seconds[0] + slope * (batch - sizes[0])


def _fastest_step(model: torch.nn.Module, optimiser: torch.optim.Optimizer, classes: int,
                  size: int, stored_size: int, batch: int, device: torch.device
                  ) -> tuple[float, float]:
    """The fastest of the timed training steps, and of the scoring forward passes."""
    generator = torch.Generator().manual_seed(0)
    side = stored_size or size
    stored = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8,
                           generator=generator)
    # drawn on the CPU from its own generator: a GPU's random state stays as it was too
    y = torch.randint(0, classes, (batch,), generator=generator).to(device)
    times = []
    for _ in range(WARM_UP_STEPS + TIMED_STEPS):
        start = time.perf_counter()
        x = stored.float().div_(255.0)
        x = (random_resized_crop_flip(x, generator, size) if stored_size
             else random_crop_flip(x, generator))
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    model.eval()
    forwards = []
    with torch.inference_mode():
        for _ in range(WARM_UP_STEPS + TIMED_STEPS):
            start = time.perf_counter()
            model(stored[:, :, :size, :size].float().div_(255.0).to(device))
            if device.type == "cuda":
                torch.cuda.synchronize()
            forwards.append(time.perf_counter() - start)
    model.train()
    return min(times[WARM_UP_STEPS:]), min(forwards[WARM_UP_STEPS:])


def estimate_verification(clean: Path | FolderScan, test_dir: Path | None, holdout: float,
                          victims: list[tuple[str, str]], epochs: int, batch: int, size: int,
                          device: torch.device, measure: bool = True,
                          cache_dir: Path | None = None, excludes_ablations: bool = False,
                          reused: int = 0, stored_size: int = 0) -> VerificationEstimate:
    """The time `evaluate` will take to train `victims` ((architecture, defence) each, one
    per training set), see the module's docstring; `reused` victims are kept from earlier
    runs and cost nothing; `stored_size`: photos, stored that large and cropped to `size`.
    `clean`: the clean folder, or its scan if already listed."""
    scan = clean if isinstance(clean, FolderScan) else scan_folder(clean)
    classes = len(scan.classes)
    images = len(scan.items)
    tests = len(scan_folder(test_dir).items) if test_dir else round(images * holdout)
    train_images = images if test_dir else images - tests
    steps_per_epoch = max(1, math.ceil(train_images / batch))
    scoring_batches = math.ceil(tests / batch)
    # each architecture's victims in step-equivalents: adversarial training adds a PGD
    # attack (a forward and backward each) to every step
    weights: dict[str, int] = {}
    for arch, defence in victims:
        weights[arch] = (weights.get(arch, 0) + 1
                         + (ADVERSARIAL_STEPS if DEFENCES[defence].adversarial else 0))
    total = 0.0
    measured_now = False
    known = True
    for arch, weight in weights.items():
        kept = kept_step_seconds(arch, size, batch, device.type, cache_dir)
        if kept is not None:
            total += kept * epochs * steps_per_epoch * weight
            continue
        if not measure:
            known = False
            continue
        step, forward = measure_step_seconds(arch, classes, size, batch, device, stored_size)
        measured_now = True
        total += (step * steps_per_epoch + forward * scoring_batches) * epochs * weight
    return VerificationEstimate(
        victims=len(victims), steps=epochs * steps_per_epoch * len(victims),
        seconds=total if known else None, measured_now=measured_now,
        excludes_ablations=excludes_ablations, reused=reused)
