"""Time left for the whole run, not only for the stage that is running.

Each stage's work is counted in one unit, *image passes*: one image at the working
resolution through one ensemble member (a forward and backward pass counts three, the
usual rule of thumb). A stage is priced, in order of preference, by: its own seconds per
unit measured so far in this run; those the last run on this machine and device measured
(kept in the cache folder); or the seconds per pass another model stage measured in this
run.
The export writes full-resolution files, so its unit is one image and only a measurement
(this run's first batch, or the last run's) estimates it; until then the whole-run figure
leaves it out rather than guess.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write

# the stages whose work is image passes through the ensemble (a common unit): one
# measured among them estimates the others
MODEL_STAGES = ("surrogates", "colour", "patterns", "noise", "spatial")
RATES_FILE = "stage-rates.json"


@dataclass
class WorkPlan:
    """Units of work still to do per stage, in run order."""

    units: dict[str, float] = field(default_factory=dict)


def surrogate_units(epochs: int, images: int, architectures: int, pixels: float) -> float:
    return 3.0 * epochs * images * architectures * pixels


def colour_units(classes: int, iterations: int, particles: int, sample: int, members: int,
                 views: int, pixels: float) -> float:
    # the swarm scores its particles once before the first iteration
    return float(classes * (iterations + 1) * particles * sample * members * views) * pixels


def pattern_units(steps: int, batch: int, networks: float, images: int, pixels: float
                  ) -> float:
    # every step a forward and backward pass of a batch through each aim network, after
    # one forward pass of every image to find each class's ImageNet class
    return (3.0 * steps * batch * networks + images) * pixels


def spatial_units(images: int, steps: int, members: int, views: int, pixels: float) -> float:
    return 3.0 * images * steps * members * views * pixels


class RunClock:
    """Turns per-stage progress into an estimate for the rest of the run.

    Each stage's seconds per unit come from the time it has spent so far over the share of
    its units done (stages that interleave, the spatial batches and their export, report
    their own time with `spent`; the others are timed from their first event)."""

    def __init__(self, plan: WorkPlan, history: dict[str, float] | None = None) -> None:
        self.plan = plan
        self.history = dict(history or {})
        self._done: dict[str, float] = {}  # stage -> share of its units done, 0..1
        self._spent: dict[str, float] = {}
        self._started: dict[str, tuple[float, float]] = {}  # stage -> (time, share done)
        self._timed_by_caller: set[str] = set()

    def spent(self, stage: str, seconds: float) -> None:
        """Add time the caller measured for `stage` (for stages that interleave)."""
        self._timed_by_caller.add(stage)
        self._spent[stage] = self._spent.get(stage, 0.0) + seconds

    def update(self, stage: str, done: int, total: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        share = self._done[stage] = min(1.0, done / total) if total > 0 else 1.0
        if stage not in self._timed_by_caller:
            # timed from the stage's first event, counting only the work done since
            start = self._started.setdefault(stage, (now, share))
            self._spent[stage] = now - start[0]

    def measured(self, stage: str) -> float | None:
        base = 0.0 if stage in self._timed_by_caller else self._started.get(stage, (0, 0))[1]
        units = self.plan.units.get(stage, 0.0) * (self._done.get(stage, 0.0) - base)
        seconds = self._spent.get(stage, 0.0)
        return seconds / units if units > 0 and seconds > 0 else None

    def seconds_per_unit(self, stage: str) -> float | None:
        own = self.measured(stage)
        if own is not None:
            return own
        if stage in self.history:
            return self.history[stage]
        if stage in MODEL_STAGES:
            known = [r for r in map(self.measured, MODEL_STAGES) if r is not None]
            if known:
                return known[-1]
        return None

    def remaining(self) -> float | None:
        """Seconds left in the run: 0 once nothing is left; None while work is left and
        none of it can be estimated yet."""
        total, pending, known = 0.0, False, False
        for stage, units in self.plan.units.items():
            left = units * (1.0 - self._done.get(stage, 0.0))
            if left <= 0:
                continue
            pending = True
            rate = self.seconds_per_unit(stage)
            if rate is not None:
                total += rate * left
                known = True
        return total if known or not pending else None

    def rates(self) -> dict[str, float]:
        """What this run measured, merged over the last run's, for the next run."""
        mine = {s: r for s in self.plan.units if (r := self.measured(s)) is not None}
        return {**self.history, **mine}


def rates_key(device_type: str, architectures: Sequence[str]) -> str:
    # rates belong to a machine's device class and core count, not to a folder, and to the
    # surrogates' architectures: a pass through a pretrained network costs several times a
    # pass through a small one
    return f"{device_type}-{os.cpu_count() or 1}-{'+'.join(sorted(architectures))}"


def read_rates(cache_dir: Path, device_type: str,
               architectures: Sequence[str]) -> dict[str, float]:
    try:
        data = json.loads((cache_dir / RATES_FILE).read_text(encoding="utf-8"))
        entry = data.get(rates_key(device_type, architectures), {})
        return {str(k): float(v) for k, v in entry.items() if float(v) > 0}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def write_rates(cache_dir: Path, device_type: str, architectures: Sequence[str],
                rates: dict[str, float]) -> None:
    path = cache_dir / RATES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[rates_key(device_type, architectures)] = rates
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as fh:
            json.dump(data, fh, indent=1)
    except (OSError, ValueError):
        pass  # an estimate for the next run is not worth failing this one
