"""Screen: sample-wise error-minimising noise (Huang et al., ICLR 2021: the min-min of
"unlearnable examples") inside the Invisible level's perceptual budget, for small images.

A network trained from scratch on the protected images (the learner) and one perturbation
per image take turns: the learner trains a few steps on the images as protected so far,
then every image's perturbation descends the learner's loss on its *true* class, so that
the perturbation, not the picture, is what makes the class easy to learn. A victim trained
from scratch on such images learns the perturbations and guesses on clean ones. The rounds
stop when the learner is right on nearly every protected image.

The bound is the Invisible level's (stages.pixel_budget: the just-noticeable change of
each pixel, at most `--eps`), the steps are luminance only (through the grey view, as the
level's), and the learner's perturbation steps see the flip-and-shift view a victim trains
with. Only the spatial branch's loss changes: the level's ensemble and its targeted
objective are not used, so the screen compares the two objectives at one budget.

    python -m dune_gui.bench.error_minimising TRAIN OUT [--learner small] [--rounds 15]
        [--pgd-steps 10] [--eps 8] [--seed 0]

OUT gets a labeled folder of PNGs at the images' own (small, square) size for
`dune-cli evaluate --train NAME=OUT`; a JSON summary (rounds, learner accuracy, PSNR) is
printed. Not a test and not the engine: a screen for the research log.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dune_gui.engine.attack import sign_pgd
from dune_gui.engine.data import decode_working, scan_folder
from dune_gui.engine.metrics import jnd_map
from dune_gui.engine.models import build_model
from dune_gui.engine.training import classifier_sgd, global_rng_seeded, random_crop_flip
from dune_gui.engine.views import FlipShiftView, grey_view

PGD_BATCH = 256
TRAIN_BATCH = 128
# the victims' flip-and-shift at 32 px (spatial.PGD_SHIFT)
SHIFT = 2


@dataclass
class NoiseResult:
    delta: torch.Tensor  # N x 3 x H x W, |delta| <= budget
    learner_accuracy: list[float] = field(default_factory=list)  # after each round
    seconds: float = 0.0


def error_minimising_noise(
    x: torch.Tensor,
    y: torch.Tensor,
    budget: torch.Tensor,
    learner: str = "small",
    rounds: int = 15,
    train_steps: int = 10,
    pgd_steps: int = 10,
    seed: int = 0,
    stop_accuracy: float = 0.99,
    on_round: Callable[[int, float], None] | None = None,
) -> NoiseResult:
    """Perturbations of `x` (N x 3 x H x W in [0, 1], classes `y`) within the per-pixel
    `budget` (N x 1 x H x W) that a from-scratch `learner` learns the classes by."""
    n, classes = len(y), int(y.max()) + 1
    step = budget / 5  # a pixel can cross its whole box in a round's steps
    delta = torch.zeros_like(x)
    with global_rng_seeded(seed + 3, torch.device("cpu")):
        net = build_model(learner, classes, x.shape[-1]).train()
    optimiser = classifier_sgd(net, 0.1)
    generator = torch.Generator().manual_seed(seed + 1)
    start = time.monotonic()
    result = NoiseResult(delta)
    for round_ in range(rounds):
        net.train()
        for _ in range(train_steps):
            idx = torch.randint(n, (TRAIN_BATCH,), generator=generator)
            seen = random_crop_flip((x[idx] + delta[idx]).clamp(0, 1), generator)
            loss = F.cross_entropy(net(seen), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        net.eval()
        view = FlipShiftView(SHIFT, seed + round_)
        for b in range(0, n, PGD_BATCH):
            part = slice(b, b + PGD_BATCH)
            lower = (x[part] - budget[part]).clamp(0, 1)
            upper = (x[part] + budget[part]).clamp(0, 1)
            labels = y[part]
            protected = sign_pgd(
                (x[part] + delta[part]).clamp(0, 1),
                lambda v, labels=labels: F.cross_entropy(net(v), labels, reduction="none"),
                lower, upper, step[part], pgd_steps, minimise=True, views=[grey_view, view])
            delta[part] = protected - x[part]
        with torch.inference_mode():
            right = sum(int((net((x[b:b + PGD_BATCH] + delta[b:b + PGD_BATCH]).clamp(0, 1))
                             .argmax(1) == y[b:b + PGD_BATCH]).sum())
                        for b in range(0, n, PGD_BATCH))
        accuracy = right / n
        result.learner_accuracy.append(accuracy)
        if on_round is not None:
            on_round(round_, accuracy)
        if accuracy >= stop_accuracy:
            break
    result.seconds = time.monotonic() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--learner", default="small")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--eps", type=float, default=8.0, help="ceiling, in /255")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scan = scan_folder(args.train)
    side = max(Image.open(item.path).size[0] for item in scan.items[:32])
    x = torch.stack([decode_working(item.path, side, 10**8) for item in scan.items]
                    ).float() / 255
    y = torch.tensor([item.label for item in scan.items])
    budget = jnd_map(x).clamp_(max=args.eps / 255)
    result = error_minimising_noise(
        x, y, budget, args.learner, args.rounds, args.train_steps, args.pgd_steps, args.seed,
        on_round=lambda r, acc: print(f"round {r}: learner {acc:.1%} on the protected images",
                                      flush=True))
    protected = ((x + result.delta).clamp(0, 1) * 255).round().to(torch.uint8)
    for item, image in zip(scan.items, protected, strict=True):
        target = (args.out / item.rel).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image.permute(1, 2, 0).numpy())).save(target)
    mse = ((protected.float() - (x * 255).round()) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-9)
    print(json.dumps({
        "images": len(y), "side": side, "learner": args.learner,
        "learner_accuracy": [round(a, 4) for a in result.learner_accuracy],
        "seconds": round(result.seconds, 1),
        "psnr_mean_db": round(float((10 * torch.log10(255**2 / mse)).mean()), 2),
    }, indent=1))


if __name__ == "__main__":
    main()
