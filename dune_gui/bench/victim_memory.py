"""Benchmark: the memory a victim's training step takes against what the check before it
estimates (dune_gui/engine/training_memory.py), and what scoring the test set takes.

    python -m dune_gui.bench.victim_memory [--cases lite2:128:128,lite2:128:64,small:128:128]
    python -m dune_gui.bench.victim_memory --score --cases lite2:128:500,lite2:128:128

Each case (ARCH:SIZE:BATCH) runs in a fresh process: it builds the victim, then two SGD
steps with momentum on random batches, and reports the growth of its peak RSS over the
process after building the network, next to `training_step_bytes`. With `--score`, the
case instead scores 500 random images with `evaluate_accuracy` in batches of BATCH (the
forward passes `evaluate` runs on the test set after every epoch) and reports that growth.
CPU only. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from typing import Any

import torch


def measure(arch: str, size: int, batch: int) -> dict[str, float]:
    from dune_gui.engine.models import build_model
    from dune_gui.engine.training_memory import training_step_bytes

    model = build_model(arch, 10, size, torch.Generator().manual_seed(0)).train()
    estimate = training_step_bytes(model, size, batch)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(trainable, lr=0.01, momentum=0.9)
    # ru_maxrss is in kB on Linux
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        x = torch.rand(batch, 3, size, size, generator=generator)
        y = torch.randint(0, 10, (batch,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"arch": arch, "size": size, "batch": batch, "process_gib": base / 2 ** 30,
            "step_gib": (peak - base) / 2 ** 30, "estimate_gib": estimate / 2 ** 30}


def measure_scoring(arch: str, size: int, batch: int, images: int = 500) -> dict[str, float]:
    from dune_gui.engine.models import build_model
    from dune_gui.engine.training import evaluate_accuracy

    model = build_model(arch, 10, size, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (images,), generator=generator)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    evaluate_accuracy(model, x, y, torch.device("cpu"), batch_size=batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"arch": arch, "size": size, "batch": batch, "images": images,
            "score_gib": (peak - base) / 2 ** 30}


def child(case: str, score: bool) -> dict[str, Any]:
    """Run one case in a fresh process (so one case's peak does not hide the next's)."""
    command = [sys.executable, "-m", "dune_gui.bench.victim_memory", "--one", case]
    out = subprocess.run(command + (["--score"] if score else []), check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _step_cells(row: dict[str, Any]) -> list[str]:
    return [row["arch"], str(row["size"]), str(row["batch"]), f"{row['step_gib']:.2f} GiB",
            f"{row['estimate_gib']:.2f} GiB", f"{row['estimate_gib'] / row['step_gib']:.2f}"]


def _score_cells(row: dict[str, Any]) -> list[str]:
    return [row["arch"], str(row["size"]), str(row["batch"]), f"{row['score_gib']:.2f} GiB"]


STEP_TABLE = (("victim", "size", "batch", "step's peak RSS growth", "estimate",
               "estimate / measured"), _step_cells)
SCORE_TABLE = (("victim", "size", "scoring batch", "peak RSS growth scoring 500 images"),
               _score_cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="lite2:128:128,lite2:128:64,small:128:128")
    parser.add_argument("--score", action="store_true",
                        help="measure scoring the test set instead of a training step")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child's case
    args = parser.parse_args()
    if args.one:
        arch, size, batch = args.one.split(":")
        run = measure_scoring if args.score else measure
        print(json.dumps(run(arch, int(size), int(batch))))
        return
    header, cells = (SCORE_TABLE if args.score else STEP_TABLE)
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for case in args.cases.split(","):
        print("| " + " | ".join(cells(child(case, args.score))) + " |")


if __name__ == "__main__":
    main()
