"""Benchmark: peak memory (RSS) of a protection run as the folder grows.

    python -m dune_gui.bench.memory_scale --sizes 2000,20000

For each size, builds a labeled folder of that many real CIFAR-10 images (files of
../shared/data/cifar10 copied cyclically under new names), then runs `dune-cli protect` with
light settings in a fresh process and reports its peak RSS and wall time. The engine streams
images through PGD and export in batches; what grows with the folder is only the
working-resolution uint8 copy used to train the surrogates (3 x R x R bytes per image) and
the manifest records.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dune_gui.bench.engine_speed import DEFAULT_DATA
from dune_gui.engine import scan_folder


def build_folder(source: Path, dest: Path, count: int) -> None:
    items = scan_folder(source).items
    classes = scan_folder(source).classes
    for i in range(count):
        item = items[i % len(items)]
        target = dest / classes[item.label] / f"{i:06d}{item.path.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.path, target)


def run_once(folder: Path, out: Path, cache: Path) -> dict[str, float]:
    code = (
        "import resource, sys, time\n"
        "from dune_gui.cli import main\n"
        "t = time.monotonic()\n"
        "rc = main(sys.argv[1:])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print('RESULT', rc, peak, time.monotonic() - t)\n")
    args = [sys.executable, "-c", code, "protect", str(folder), str(out), "--quiet",
            "--ensemble", "fast", "--checkpoints", "1", "--epochs", "1", "--steps", "2",
            "--step-size", "4", "--iterations", "2", "--particles", "4"]
    env = {**os.environ, "DUNE_CACHE_DIR": str(cache)}
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    _, rc, peak_kib, seconds = line.split()
    return {"exit": int(rc), "peak_rss_mib": round(int(peak_kib) / 1024, 1),
            "seconds": round(float(seconds), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", default="2000,20000")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            folder = Path(tmp) / f"in-{size}"
            t0 = time.monotonic()
            build_folder(args.data, folder, size)
            stats = run_once(folder, Path(tmp) / f"out-{size}", Path(tmp) / "cache")
            stats.update(images=size, build_seconds=round(time.monotonic() - t0, 1))
            results.append(stats)
            print(json.dumps(stats), flush=True)
            shutil.rmtree(folder)
            shutil.rmtree(Path(tmp) / f"out-{size}")
    print(f"self peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    main()
