"""Benchmark: what protecting a folder of photos costs on this machine at the default
settings, from each stage's measured rate, and the projected time for a whole folder.

    python -m dune_gui.bench.photo_rates [--photos DIR] [--count 40] [--working-size 0]
                                         [--project 3000] [--json FILE]

A full run on a CPU takes hours, so each stage is timed on a small real sample instead,
with the engine's own functions and the default settings (working size as the app would
choose it: 0 = auto), and the stages are scaled to `--project` photos in 10 classes:
decoding at the working size, one surrogate epoch per default architecture, one
colour-search objective call (the search makes classes x (iterations + 1) of them; none at
a level without colour search), one PGD batch, and the export of full-resolution photos
(compose, PNG, perceptual measures).
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from dune_gui.engine.colour import colour_objective, offset_values
from dune_gui.engine.config import DEFAULTS, resolve_architectures, resolve_surrogate_epochs
from dune_gui.engine.data import decode_full, decode_working, photo_resolution
from dune_gui.engine.export import compose, export_image
from dune_gui.engine.models import build_model
from dune_gui.engine.stages import GREY_VIEW_WEIGHT, pixel_budget, spatial_attack
from dune_gui.engine.surrogates import Ensemble, members_from_checkpoints
from dune_gui.engine.training import checkpoint_epochs, train_classifier

from .samples import DEFAULT_PHOTOS, copy_photo, spread_sample

CPU = torch.device("cpu")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--count", type=int, default=40, help="photos timed per stage")
    parser.add_argument("--working-size", type=int, default=0, help="0: as the app chooses")
    parser.add_argument("--project", type=int, default=3000, help="photos in the projection")
    parser.add_argument("--resize", default=None, metavar="WxH",
                        help="time copies of the photos resized to this size (JPEG, quality "
                             "92), e.g. 400x533 for typical product photos")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cfg = DEFAULTS
    classes, items = spread_sample(args.photos, args.count)
    paths = [item.path for item in items]
    copies = tempfile.TemporaryDirectory()
    if args.resize:
        paths = [copy_photo(item.path, Path(copies.name) / f"{j}.jpg", args.resize)
                 for j, item in enumerate(items)]
    side, photo_size = photo_resolution(paths, cfg.max_pixels, on_gpu=False)
    size = args.working_size or photo_size or side
    architectures = resolve_architectures(cfg.architectures, size)
    epochs = resolve_surrogate_epochs(cfg.epochs, args.project, size, architectures,
                                      cfg.checkpoints)
    k = len(classes)
    out: dict[str, object] = {"photos": str(args.photos), "resized_to": args.resize,
                              "sample": len(items),
                              "photo_short_side": side, "working_size": size,
                              "threads": torch.get_num_threads()}

    working, seconds = timed(lambda: torch.stack(
        [decode_working(p, size, cfg.max_pixels) for p in paths]))
    rates: dict[str, float] = {"decode at working size (photos/s)": len(items) / seconds}
    labels = torch.tensor([item.label for item in items])

    members = []
    epoch_rates = []
    for i, arch in enumerate(architectures):
        def epoch(seed: int = i, arch: str = arch, recalibrate: bool = True):
            model = build_model(arch, k, size, torch.Generator().manual_seed(seed))
            return train_classifier(model, working, labels, 1,
                                    torch.Generator().manual_seed(seed), CPU,
                                    batch_size=cfg.train_batch_size,
                                    learning_rate=cfg.learning_rate, recalibrate=recalibrate)

        result = epoch()  # warm-up (first use of these shapes), also the members' weights
        # a steady epoch; the BN recalibration a real run makes once per checkpoint is left
        # out (three times in fifteen epochs)
        _, seconds = timed(lambda epoch=epoch: epoch(recalibrate=False))
        epoch_rates.append(len(items) / seconds)
        keep = checkpoint_epochs(epochs, cfg.checkpoints)  # same weights, same cost
        members += members_from_checkpoints(arch, dict.fromkeys(keep, result.checkpoints[1]),
                                            k, size, CPU)
    ensemble = Ensemble(members, CPU)
    # image-epochs per second of all architectures together, as engine_speed reports it
    rates["surrogate training (image-epochs/s, all architectures)"] = (
        1 / sum(1 / r for r in epoch_rates))

    x = working.float().div(255.0)
    colour_class_s = 0.0  # the default level may run no colour search
    if cfg.uses_colour:
        sample = x[:min(cfg.colour_sample, len(items))]
        objective = colour_objective(
            sample, 1, ensemble, cfg.colour, cfg.penalty_weight,
            grey_view_weight=GREY_VIEW_WEIGHT if cfg.grey_robust else 0,
            headroom=cfg.colour_headroom)
        offsets = (torch.rand(cfg.particles, offset_values(cfg.colour_grid)) * 2 - 1) * 0.02
        objective(offsets)  # warm-up
        _, call_s = timed(lambda: objective(offsets))
        call_s *= cfg.colour_sample / sample.shape[0]  # a full class sample
        colour_class_s = (cfg.iterations + 1) * call_s
        rates["colour search (s per class)"] = colour_class_s

    batch = x[:min(cfg.batch_size, len(items))]
    attack = spatial_attack(cfg, CPU)
    targets = (labels[:batch.shape[0]] + 1) % k
    deltas, seconds = timed(lambda: attack.perturb(batch, targets, ensemble,
                                                   budget=pixel_budget(cfg, batch)))
    rates["spatial PGD (photos/s)"] = batch.shape[0] / seconds

    offset = torch.zeros(offset_values(cfg.colour_grid))
    with tempfile.TemporaryDirectory() as tmp:
        def export_all() -> None:
            for j, path in enumerate(paths[:batch.shape[0]]):
                image = decode_full(path, cfg.max_pixels)
                export_image(image, compose(image, deltas[j], offset, cfg.colour_headroom),
                             Path(tmp) / f"{j}.png", cfg.quality, False, True)
        _, seconds = timed(export_all)
    rates["export at full resolution (photos/s)"] = batch.shape[0] / seconds

    n = args.project
    projected = {
        "scan": n / rates["decode at working size (photos/s)"],
        "surrogates": n * epochs / rates[
            "surrogate training (image-epochs/s, all architectures)"],
        "colour": 10 * colour_class_s,
        "spatial": n / rates["spatial PGD (photos/s)"],
        "export": n / rates["export at full resolution (photos/s)"],
    }
    out["rates"] = {key: round(v, 3) for key, v in rates.items()}
    out[f"projected_s_for_{n}_photos_10_classes"] = {key: round(v) for key, v in
                                                     projected.items()}
    out["projected_total_s"] = round(sum(projected.values()))
    copies.cleanup()
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
