"""Experiment: one universal pattern per class, aimed at pretrained networks' ImageNet heads.

    python -m dune_gui.bench.universal_patterns --clean PH/train --out PH/uap16 \
        [--eps 16] [--steps 300] [--surrogates lite0,lite1] [--judges lite0,lite1,lite2] \
        [--check PH/val] [--report R.json]

A linear probe on a pretrained network's frozen features is misled only if the protected
photos of class y sit, in that network's feature space, where photos of another class do
(research log, eleventh session); per-photo perturbations made on one pretrained network
moved a held-out one's features too little. This tries the other shape: one pattern per
class, shared by all its photos (so whatever it adds is the same feature every time), made
to turn the surrogates' own 1000-class ImageNet heads toward the ImageNet class of the
target class y* = (y + offset) mod K (the first surrogate's most frequent top-1 on the
clean photos of y*: no class names needed). Optimised with Adam (step size on a cosine from
eps / 10) on the patterns' gradient over random batches of photos, each seen as a victim
trains on it (a random resized crop, 35-100% of the area, flipped, at --victim-size),
and clipped to +-eps after every step.

Writes the protected copy (PNG, same names) of photos that are square at --size (the
imagenette photos are; anything else is refused: the copy would not be the same photo).
Reported per judge network (its ImageNet head restricted to the folder's ImageNet
classes): the share of photos classified as their own class, clean and protected, and
protected as their target; on --check photos (not used to make the patterns) too. Not a
protection claim (that is `dune-cli evaluate`) and not the engine: a screen.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from dune_gui.engine.class_patterns import (
    ImageNetHead,
    imagenet_classes,
    pattern_learning_rate,
)
from dune_gui.engine.evaluation import LabeledTensors, load_labeled
from dune_gui.engine.progress import Reporter
from dune_gui.engine.views import crop_flip_grids


def victim_view(x: torch.Tensor, size: int) -> torch.Tensor:
    """What a victim scores: the photo resized (anti-aliased) to its side."""
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


def make_patterns(data: LabeledTensors, k: int, target_imagenet: torch.Tensor,
                  surrogates: list[torch.nn.Module], eps: float, steps: int, batch: int,
                  victim_size: int, generator: torch.Generator) -> torch.Tensor:
    side = data.images.shape[-1]
    patterns = (torch.rand(k, 3, side, side, generator=generator) * 2 - 1) * eps * 0.1
    patterns.requires_grad_(True)
    optimiser = torch.optim.Adam([patterns], lr=eps / 10)
    for step in range(steps):
        idx = torch.randint(len(data.images), (batch,), generator=generator)
        y = data.labels[idx]
        x = (data.images[idx].float() / 255 + patterns[y]).clamp(0, 1)
        # anti-aliased to a little above the victim's side first: sampling the crop
        # straight from the full photo would alias the pattern's fine detail away
        x = F.interpolate(x, size=(160, 160), mode="bilinear", antialias=True,
                          align_corners=False)
        view = F.grid_sample(x, crop_flip_grids(batch, victim_size, victim_size, generator),
                             mode="bilinear", align_corners=False)
        loss = sum(F.cross_entropy(net(view), target_imagenet[y])
                   for net in surrogates)
        optimiser.zero_grad()
        loss.backward()
        for group in optimiser.param_groups:
            group["lr"] = pattern_learning_rate(eps, step, steps)
        optimiser.step()
        with torch.no_grad():
            patterns.clamp_(-eps, eps)
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step}: loss {loss.item() / len(surrogates):.3f}", flush=True)
    return patterns.detach()


def random_patterns(k: int, side: int, victim_size: int, eps: float,
                    generator: torch.Generator) -> torch.Tensor:
    """The control: class-wise patterns as strong, aimed at nothing. Drawn at the victim's
    side so that its downscale does not average them away, as the aimed ones are not."""
    noise = (torch.rand(k, 3, victim_size, victim_size, generator=generator) * 2 - 1) * eps
    return F.interpolate(noise, size=(side, side), mode="bilinear", align_corners=False)


def protected_pixels(data: LabeledTensors, patterns: torch.Tensor) -> torch.Tensor:
    return ((data.images.float() / 255 + patterns[data.labels]).clamp(0, 1) * 255
            ).round().to(torch.uint8)


def judge(data: LabeledTensors, protected: torch.Tensor, nets: dict[str, torch.nn.Module],
          imagenet: torch.Tensor, target: torch.Tensor, victim_size: int) -> dict[str, object]:
    err = (protected.float() - data.images.float()) / 255
    row: dict[str, object] = {"psnr_db": round(
        (10 * torch.log10(1 / err.pow(2).mean((1, 2, 3)))).mean().item(), 2)}
    for name, net in nets.items():
        predictions = []
        for images in (data.images, protected):
            with torch.inference_mode():
                logits = torch.cat([net(victim_view(images[i:i + 100].float() / 255,
                                                                 victim_size))
                                    for i in range(0, len(images), 100)])
            predictions.append(logits[:, imagenet].argmax(1))
        clean, moved = predictions
        row[name] = {"clean_own": round(clean.eq(data.labels).float().mean().item(), 4),
                     "protected_own": round(moved.eq(data.labels).float().mean().item(), 4),
                     "protected_target": round(moved.eq(target).float().mean().item(), 4)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="protected copy written here")
    parser.add_argument("--size", type=int, default=224, help="the photos' (square) side")
    parser.add_argument("--eps", type=float, default=16, help="L-inf bound, in 1/255")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--victim-size", type=int, default=128)
    parser.add_argument("--offset", type=int, default=3)
    parser.add_argument("--surrogates", default="lite0,lite1")
    parser.add_argument("--judges", default="lite0,lite1,lite2")
    parser.add_argument("--random", action="store_true",
                        help="control: no aim, each class's pattern uniform noise in +-eps "
                             "drawn at --victim-size and resized to the photos' side")
    parser.add_argument("--check", type=Path, help="other photos of the same classes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    reporter = Reporter(None, None, None)
    for item in sorted(args.clean.glob("*/*")):
        with Image.open(item) as im:
            if im.size != (args.size, args.size):
                raise SystemExit(f"{item} is {im.size[0]} x {im.size[1]}, not "
                                 f"{args.size} x {args.size}: its copy would be cropped")
    data, classes = load_labeled(args.clean, None, args.size, reporter, photo=True)
    k = len(classes)
    names = sorted(set(args.surrogates.split(",")) | set(args.judges.split(",")))
    nets = {name: ImageNetHead(name).eval() for name in names}
    surrogates = [nets[name] for name in args.surrogates.split(",")]
    imagenet = imagenet_classes(surrogates[0], data.images, data.labels, k,
                                side=args.victim_size)
    target_imagenet = imagenet[(torch.arange(k) + args.offset) % k]
    generator = torch.Generator().manual_seed(args.seed)
    if args.random:
        patterns = random_patterns(k, args.size, args.victim_size, args.eps / 255, generator)
    else:
        patterns = make_patterns(data, k, target_imagenet, surrogates, args.eps / 255,
                                 args.steps, args.batch, args.victim_size, generator)
    protected = protected_pixels(data, patterns)
    for pixels, key in zip(protected, data.keys, strict=True):
        path = args.out / f"{key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(path)
    judges = {name: nets[name] for name in args.judges.split(",")}
    target = (data.labels + args.offset) % k
    result: dict[str, object] = {
        "settings": {k_: str(v) for k_, v in vars(args).items()},
        "imagenet_classes": imagenet.tolist(),
        "made_on": judge(data, protected, judges, imagenet, target, args.victim_size)}
    print("made on", json.dumps(result["made_on"]), flush=True)
    if args.check:
        check, _ = load_labeled(args.check, classes, args.size, reporter, photo=True)
        result["check"] = judge(check, protected_pixels(check, patterns), judges, imagenet,
                                (check.labels + args.offset) % k, args.victim_size)
        print("check", json.dumps(result["check"]), flush=True)
    if args.report:
        args.report.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
