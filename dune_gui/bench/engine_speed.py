"""Benchmark: images per second for each engine stage at default settings.

    python -m dune_gui.bench.engine_speed [--per-class 50] [--data ../shared/data/cifar10/train]
                                          [--variant '{"steps": 10}' --variant '{"steps": 5}']

Copies a class-balanced subset of the folder to a temporary directory, runs the real
`protect()` with default settings (surrogates are trained: the cache is a fresh temporary
folder) and reports throughput per stage plus the projected time for the whole folder.
Each `--variant` (settings over the defaults, as JSON) is run in turn on the same subset,
each with a fresh cache, so that their times are compared within one run.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from dune_gui.bench.samples import subset
from dune_gui.engine import ProtectConfig, protect, scan_folder
from dune_gui.engine.config import resolve_surrogate_epochs

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10" / "train"


def measure(tmpdir: Path, n: int, full: int, device: str, variant: dict, index: int
            ) -> dict:
    """One protect of the subset in `tmpdir / "in"` with `variant` over the defaults:
    its stage times, rates and the projection to the `full` folder."""
    os.environ["DUNE_CACHE_DIR"] = str(tmpdir / f"cache-{index}")
    config = ProtectConfig(input_dir=tmpdir / "in", output_dir=tmpdir / f"out-{index}",
                           device=device, **variant)
    start = time.monotonic()
    result = protect(config)
    wall = time.monotonic() - start
    manifest = json.loads(result.manifest_path.read_text())
    epochs, working_size = manifest["surrogates"]["epochs"], manifest["working_size"]
    t = result.timings
    k = len(result.classes)
    architectures = manifest["surrogates"]["architectures"]
    archs = len(architectures)
    rates = {"scan (decode at working size)": n / t["scan"]}
    projected = t["scan"] * full / n + t["export"] * full / n
    if "surrogates" in t:  # the targeted objective and the colour search need them
        # the folder of `full` images trains its surrogates its own number of epochs (auto)
        full_epochs = resolve_surrogate_epochs(config.epochs, full, working_size,
                                               tuple(architectures), config.checkpoints)
        training_rate = n * epochs * archs / t["surrogates"]
        rates["surrogate training (image-epochs/s, all architectures)"] = training_rate
        projected += full * full_epochs * archs / training_rate
    if "noise" in t:  # the error-minimising noise: rounds over the whole folder
        rounds = len(manifest["noise"]["learner_accuracy_by_round"] or []) or None
        rates["error-minimising noise (images/s, all rounds)"] = n / t["noise"]
        # as many rounds on the whole folder as on the subset: a larger folder may need
        # more (the learner sees the same number of images per round)
        projected += t["noise"] * full / n
        if rounds:
            rates["noise rounds"] = rounds
    if not config.uses_noise:
        rates["spatial PGD (images/s)"] = n / t["spatial"]
        projected += t["spatial"] * full / n
    rates["export (images/s)"] = n / t["export"]
    if "colour" in t:  # levels without the colour branch skip its search
        rates["colour search (images scored/s)"] = (
            k * min(config.colour_sample, n // k) * config.particles
            * (config.iterations + 1) / t["colour"])
        rates["colour search (classes/s)"] = k / t["colour"]
        projected += t["colour"]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
        "variant": variant, "device": result.device, "images": n, "classes": k,
        "settings": f"{config.spatial_objective}, eps {config.eps * 255:g}/255, step "
                    f"{config.step_size * 255:g}/255, T={config.steps}, ensemble "
                    f"{'+'.join(architectures) or 'none'} x {config.checkpoints} checkpoints "
                    f"(M={archs * config.checkpoints}), {epochs} epochs, "
                    f"PSO {config.particles}x{config.iterations}",
        "seconds": {k2: round(v, 2) for k2, v in t.items()}, "wall_s": round(wall, 1),
        "rates": {k2: round(v, 2) for k2, v in rates.items()},
        "projected_full_folder_s": round(projected), "full_folder_images": full,
    }
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--variant", action="append", default=[],
                        help="settings over the defaults as JSON; repeat to compare")
    args = parser.parse_args(argv)
    full = len(scan_folder(args.data).items)
    variants = [json.loads(v) for v in args.variant] or [{}]
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        n = subset(args.data, tmpdir / "in", args.per_class)
        reports = [measure(tmpdir, n, full, args.device, variant, i)
                   for i, variant in enumerate(variants)]
    report = reports[0] if len(reports) == 1 else {"variants": reports}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
