"""Benchmark: the engine's CPU memory settings (dune_gui/engine/cpu_memory.py) against the
system's defaults, and torch's transparent huge pages beside them, on the passes a run
spends its time in: a surrogate training step and a PGD batch, for the photo ensemble at
128 px (also in a worker thread, as the app runs it) and the small-image ensemble at 32 px.

    python -m dune_gui.bench.cpu_memory [--steps 3] [--rounds 2] [--out R.json]

Each measurement runs in a fresh process (the settings are per process), the settings
alternating, round after round; per workload the median of the rounds: wall, user and
system CPU seconds per step, minor page faults per step, peak resident memory.
Not a test: numbers depend on the machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from dune_gui.engine.cpu_memory import MALLOC_VARIABLES, OPT_OUT_VARIABLE

HUGE_PAGES_VARIABLE = "THP_MEM_ALLOC_ENABLE"  # torch's own option, measured beside
# The environment of each setting. "system": glibc's own (dynamic) thresholds and torch's
# plain allocation (setting a MALLOC_ variable instead would switch glibc's dynamic
# thresholds off, which is not what a system does by default); "engine": the engine's
# default; torch's transparent huge pages alone and on top of the engine's settings.
SETTINGS: dict[str, dict[str, str]] = {
    "system": {OPT_OUT_VARIABLE: "system"},
    "engine": {},
    "huge-pages": {OPT_OUT_VARIABLE: "system", HUGE_PAGES_VARIABLE: "1"},
    "engine+huge-pages": {HUGE_PAGES_VARIABLE: "1"},
}
# "-thread": the steps run in a worker thread, as the app runs the engine
WORKLOADS = ("photo-train", "photo-pgd", "photo-pgd-thread", "small-train", "small-pgd")


def run_workload(name: str, steps: int) -> dict[str, float]:
    """In this process: one warm-up step, then `steps` timed ones of the workload."""
    import torch

    from dune_gui.bench.member_speed import default_ensemble
    from dune_gui.engine.config import DEFAULTS, PHOTO_ENSEMBLE, SMALL_IMAGE_ENSEMBLE
    from dune_gui.engine.models import build_model
    from dune_gui.engine.stages import pixel_budget, spatial_attack

    cpu = torch.device("cpu")
    in_thread = name.endswith("-thread")
    name = name.removesuffix("-thread")
    photo = name.startswith("photo")
    size = 128 if photo else 32
    architectures = PHOTO_ENSEMBLE if photo else SMALL_IMAGE_ENSEMBLE
    generator = torch.Generator().manual_seed(0)
    if name.endswith("train"):
        models = [build_model(a, 10, size, generator).train() for a in architectures]
        parameters = [p for m in models for p in m.parameters() if p.requires_grad]
        optimiser = torch.optim.SGD(parameters, lr=0.01, momentum=0.9)
        images = torch.rand(DEFAULTS.train_batch_size, 3, size, size, generator=generator)
        labels = torch.randint(0, 10, (images.shape[0],), generator=generator)

        def step() -> None:
            for model in models:
                optimiser.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(images), labels).backward()
                optimiser.step()
    else:
        ensemble = default_ensemble(size, fold_batch_norms=True)  # what the engine runs
        batch = torch.rand(DEFAULTS.batch_size, 3, size, size, generator=generator)
        targets = torch.randint(0, 10, (batch.shape[0],), generator=generator)
        attack = spatial_attack(DEFAULTS, cpu)
        budget = pixel_budget(DEFAULTS, batch)

        def step() -> None:
            attack.perturb(batch, targets, ensemble, budget=budget)

    def measured() -> tuple[float, resource.struct_rusage, resource.struct_rusage]:
        step()
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - start
        return wall, before, resource.getrusage(resource.RUSAGE_SELF)

    if in_thread:
        results = []
        worker = threading.Thread(target=lambda: results.append(measured()))
        worker.start()
        worker.join()
        wall, before, after = results[0]
    else:
        wall, before, after = measured()
    return {"wall_s": wall / steps, "user_s": (after.ru_utime - before.ru_utime) / steps,
            "system_s": (after.ru_stime - before.ru_stime) / steps,
            "minor_faults": (after.ru_minflt - before.ru_minflt) / steps,
            "peak_rss_mb": after.ru_maxrss / 1024}


def measure(workload: str, setting: str, steps: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items()
           if k not in (HUGE_PAGES_VARIABLE, OPT_OUT_VARIABLE, *MALLOC_VARIABLES)}
    env.update(SETTINGS[setting])
    out = subprocess.run([sys.executable, "-m", "dune_gui.bench.cpu_memory", "--worker",
                          workload, "--steps", str(steps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per setting")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_workload(args.worker, args.steps)))
        return
    result: dict[str, object] = {"steps": args.steps, "rounds": args.rounds}
    for workload in args.workloads.split(","):
        chosen = args.settings.split(",")
        rows: dict[str, list[dict[str, float]]] = {s: [] for s in chosen}
        for _ in range(args.rounds):
            for setting in chosen:
                rows[setting].append(measure(workload, setting, args.steps))
        medians: dict[str, dict[str, float]] = {
            s: {k: round(statistics.median(r[k] for r in rows[s]), 3) for k in rows[s][0]}
            for s in chosen}
        if "system" in medians:  # wall-clock speed-up of each setting over the system's
            medians["speed_up"] = {s: round(medians["system"]["wall_s"] / m["wall_s"], 2)
                                   for s, m in list(medians.items())}
        result[workload] = medians
        print(workload, json.dumps(medians), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
