"""Benchmark: where a full-resolution export's time goes, and what writing a batch while
the next batch's PGD runs saves end to end.

    python -m dune_gui.bench.export [--photos DIR] [--count 80] [--resize 400x533]
                                    [--workers 0,1] [--rounds 2] [--device cpu] [--json FILE]

Part 1 times each step of exporting one photo (decode, compose, PNG encoding at zlib
levels 1, 3 and 6 with the file sizes, the perceptual measures and each of the costly ones
alone) over `--count` photos.
Part 2 protects the same photos (10 classes, default settings) once to fill a cache,
then again into fresh output folders for each export thread count in `--workers`
(0: in the calling thread, as before), alternating for `--rounds` rounds; the surrogates
and colour offsets come from the cache, so the runs differ only in the spatial + export
stages. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dune_gui.engine import ProtectConfig, protect, stages
from dune_gui.engine.config import DEFAULTS
from dune_gui.engine.data import decode_full, decode_working
from dune_gui.engine.export import compose, measured_pair, quality_metrics, read_back, to_pil
from dune_gui.engine.metrics import delta_e2000_mean_p99, ssim, visible_share
from dune_gui.engine.stages import pixel_budget

from .samples import DEFAULT_PHOTOS, sample_folder


def export_steps(folder: Path) -> dict[str, float]:
    """Milliseconds per photo of each export step, and the PNG sizes per level."""
    paths = sorted(folder.rglob("*.jpg"))
    totals: dict[str, float] = {}
    sizes = {1: 0, 3: 0, 6: 0}
    gen = torch.Generator().manual_seed(0)

    warming_up = True

    def add(step: str, start: float) -> None:
        if not warming_up:
            totals[step] = totals.get(step, 0.0) + time.perf_counter() - start

    # the first photo once untimed: torch's first calls of each operation set themselves up
    for n, path in enumerate([paths[0], *paths]):
        warming_up = n == 0
        t = time.perf_counter()
        image = decode_full(path, 40_000_000)
        add("decode", t)
        # a perturbation like the default's: at a 128-px working copy, every pixel at the
        # edge of its per-pixel budget (where sign-PGD leaves most of them), random sign
        working = decode_working(path, 128, 40_000_000).float().div(255).unsqueeze(0)
        budget = pixel_budget(DEFAULTS, working)
        budget = DEFAULTS.eps if budget is None else budget[0]
        sign = torch.randint(0, 2, (3, *working.shape[-2:]), generator=gen) * 2 - 1
        delta = sign * budget
        t = time.perf_counter()
        protected = compose(image, delta, None)
        pil = to_pil(protected, image)
        add("compose + quantise", t)
        for level in sizes:
            buf = io.BytesIO()
            t = time.perf_counter()
            pil.save(buf, format="PNG", compress_level=level)
            add(f"PNG level {level}", t)
            sizes[level] += 0 if warming_up else buf.tell()
        original, written = torch.from_numpy(image.rgb).permute(2, 0, 1), read_back(pil, image)
        t = time.perf_counter()
        quality_metrics(original, written)
        add("perceptual measures", t)
        # each measure alone, as quality_metrics takes it (at most METRIC_MAX_PIXELS)
        a, b = measured_pair(original, written)
        for name, measure in (("SSIM", ssim), ("CIEDE2000", delta_e2000_mean_p99),
                              ("beyond notice", visible_share)):
            t = time.perf_counter()
            measure(a, b)
            add(f"  of which {name}", t)
    out = {f"{step} (ms)": round(s / len(paths) * 1000, 1) for step, s in totals.items()}
    out.update({f"PNG level {level} (KB)": round(b / len(paths) / 1024, 1)
                for level, b in sizes.items()})
    return out


def end_to_end(folder: Path, workers: list[int], rounds: int, work: Path,
               device: str) -> dict:
    cache = work / "cache"

    def run(out: Path):
        config = ProtectConfig(input_dir=folder, output_dir=out, cache_dir=cache,
                               device=device)
        start = time.perf_counter()
        result = protect(config)
        return time.perf_counter() - start, result

    run(work / "warm-up")  # trains the surrogates into the cache
    walls: dict[int, list[float]] = {w: [] for w in workers}
    stage_s: dict[int, list[dict[str, float]]] = {w: [] for w in workers}
    original = stages.export_workers
    try:
        for r in range(rounds):
            for w in workers:
                stages.export_workers = lambda device, w=w: w  # type: ignore[assignment]
                wall, result = run(work / f"round{r}-workers{w}")
                walls[w].append(round(wall, 1))
                stage_s[w].append({k: round(v, 1) for k, v in result.timings.items()
                                   if k in ("spatial", "export", "export-threads")})
    finally:
        stages.export_workers = original  # type: ignore[assignment]
    base = statistics.median(walls[workers[0]])
    return {str(w): {"wall_s": walls[w], "stages_s": stage_s[w],
                     f"speed-up over workers={workers[0]}": round(
                         base / statistics.median(walls[w]), 2)} for w in workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--count", type=int, default=80)
    parser.add_argument("--resize", default=None, metavar="WxH")
    parser.add_argument("--workers", default="0,1",
                        help="export thread counts to compare (0: the calling thread)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dune-bench-export-") as tmp:
        work = Path(tmp)
        folder = sample_folder(args.photos, args.count, args.resize, work / "photos")
        out: dict[str, object] = {"photos": str(args.photos), "count": args.count,
                                  "resized_to": args.resize,
                                  "threads": torch.get_num_threads(),
                                  "export steps per photo": export_steps(folder)}
        if not args.skip_end_to_end:
            workers = list(dict.fromkeys(int(w) for w in args.workers.split(",")))
            out["device"] = args.device
            out["end to end"] = end_to_end(folder, workers, args.rounds, work, args.device)
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
