"""Benchmark: the error-minimising noise's PGD (one round's steps over a set of images) at a
working size, in batches of several sizes: seconds and peak memory of each. Each size runs
in a fresh process (peak memory is per process), the sizes alternating over `--repeats`.
The images are random (speed does not depend on their content); the learner is the
engine's `small`, the steps and views the Invisible level's.

    python -m dune_gui.bench.noise_batch [--size 128] [--images 256] [--batches 256,64]

Not a test: numbers depend on the machine; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(size: int, images: int, batch: int) -> dict[str, float]:
    """Seconds and peak RSS (GB) of `images` images' steps in batches of `batch`."""
    import torch

    from dune_gui.engine.metrics import jnd_map
    from dune_gui.engine.noise import NoiseMaker
    from dune_gui.engine.views import grey_view

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(images, 3, size, size, generator=generator)
    y = torch.arange(images) % 10
    budget = jnd_map(x).clamp(max=8 / 255)
    maker = NoiseMaker(x, y, 10, budget, budget / 4, 10, "small", 0, 15,
                       lambda _: [grey_view])
    maker.net.eval()
    start = time.perf_counter()
    for b in range(0, images, batch):
        part = slice(b, b + batch)
        maker.descend(x[part], y[part], torch.zeros_like(x[part]), budget[part],
                      maker.step[part], [grey_view])
    seconds = time.perf_counter() - start
    return {"batch": batch, "seconds": seconds,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batches", default="256,64")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.size, args.images, args.one)))
        return
    rows = []
    for _ in range(args.repeats):
        for batch in map(int, args.batches.split(",")):
            out = subprocess.run([sys.executable, "-m", "dune_gui.bench.noise_batch",
                                  "--size", str(args.size), "--images", str(args.images),
                                  "--one", str(batch)],
                                 capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"batch {batch}: {rows[-1]['seconds']:.1f} s, peak RSS "
                  f"{rows[-1]['peak_rss_gb']:.2f} GB", flush=True)


if __name__ == "__main__":
    main()
